"""The Python API (``import srsweep``), as a notebook uses it: real wandb offline runs in
this process, the real ledger."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import wandb

import srsweep
from srsweep.agents.function import FunctionTrial
from srsweep.backends import open_ledger
from srsweep.errors import SpecError
from srsweep.errors import SrsweepError

pytestmark = pytest.mark.slow  # each function trial starts wandb's service

STUDY = {  # the seed's notebook style: a dict, with a tuple among the values
    "program": "train.py",
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"lr": {"values": [0.1, 0.01]}, "shape": {"value": (2, 0)}},
}


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('the script; the tests call a function')\n")
    return tmp_path


def train() -> None:
    run = wandb.init(config={"epochs": 3, "lr": 99.0})  # defaults; the sweep's lr wins
    for epoch in range(run.config.epochs):
        wandb.log({"loss": run.config["lr"] * (3 - epoch)})
    wandb.summary["shape_sum"] = sum(run.config.shape)
    run.finish()


def test_a_dict_sweep_runs_a_function_and_reads_back(here):
    results = here / "results"
    sid = srsweep.sweep(STUDY, project="notebook", results=results)
    done = srsweep.agent(sid, function=train, results=results, echo=lambda _: None)
    assert (
        done.states == {"finished": 2} and done.reason == "sweep finished: every grid point has run"
    )
    runs = {r.params["lr"]: r for r in open_ledger(results).runs(sid)}
    assert set(runs) == {0.1, 0.01}
    assert runs[0.1].config["epochs"] == 3 and runs[0.1].config["lr"] == 0.1
    assert [h["loss"] for h in runs[0.01].history] == pytest.approx([0.03, 0.02, 0.01])
    assert runs[0.01].summary["shape_sum"] == 2 and runs[0.01].summary["loss"] == 0.01

    frame = srsweep.runs(sid, results=results)
    assert sorted(frame["lr"]) == [0.01, 0.1] and set(frame["state"]) == {"finished"}
    hist = srsweep.history(sid, results=results)
    assert len(hist) == 6 and set(hist["run_id"]) == {r.id for r in runs.values()}
    paths = srsweep.report(sid, results=results, mirror=False)
    assert results / sid / "report.md" in paths and (results / sid / "report.md").stat().st_size


def test_a_function_that_never_logs_the_metric_is_warned_about_once(here):
    results, lines = here / "results", []
    sid = srsweep.sweep({**STUDY, "metric": {"name": "los"}}, results=results)
    done = srsweep.agent(sid, function=train, results=results, echo=lines.append)
    assert done.states == {"finished": 2}
    assert [line for line in lines if "warning" in line] == [
        "warning: run script-001 finished without logging 'los' (logged: loss, shape_sum); "
        "the sweep's metric is 'los', so its runs cannot be ranked: check metric.name in "
        f"{here / 'sweep config'} (did you mean 'loss'?); said once per agent"
    ]


def test_a_dict_and_its_yaml_give_the_same_trials(here):
    results = here / "results"
    (here / "spec.yaml").write_text(
        "program: train.py\nmethod: grid\nparameters:\n  lr: {values: [0.1, 0.01]}\n"
        "  shape: {value: [2, 0]}\n"
    )
    from_dict = srsweep.sweep(STUDY, results=results)
    from_yaml = srsweep.sweep(here / "spec.yaml", results=results)
    ledger = open_ledger(results)
    trials = [[ledger.claim(s, "t").params for _ in range(2)] for s in (from_dict, from_yaml)]
    assert trials[0] == trials[1] and ledger.claim(from_dict, "t") is None


def test_a_failing_trial_keeps_its_traceback_and_the_agent_goes_on(here):
    results = here / "results"
    sid = srsweep.sweep(STUDY, results=results)

    def flaky() -> None:
        run = wandb.init()
        wandb.log({"loss": 1.0})
        if run.config.lr == 0.1:
            raise ValueError("diverged at lr 0.1")

    # called as W&B users call wandb.agent: the function second, project by keyword
    done = srsweep.agent(sid, flaky, project="notebook", results=results, echo=lambda _: None)
    assert done.states == {"failed": 1, "finished": 1}
    (failed,) = [r for r in open_ledger(results).runs(sid) if r.state == "failed"]
    assert "ValueError: diverged at lr 0.1" in failed.error and "in flaky" in failed.error
    assert failed.history == [{"_step": 0, "loss": 1.0}]  # what it logged before failing


def test_the_stop_button_preempts_the_trial_queues_it_and_returns(here):
    results = here / "results"
    sid = srsweep.sweep(STUDY, results=results)

    def interrupted() -> None:
        wandb.init()
        wandb.log({"loss": 1.0})
        os.kill(os.getpid(), signal.SIGINT)  # what a notebook's stop button sends
        time.sleep(30)

    t0 = time.monotonic()
    done = srsweep.agent(sid, function=interrupted, results=results, echo=lambda _: None)
    assert time.monotonic() - t0 < 20
    assert done.states == {"preempted": 1} and done.reason == "stopped by signal"
    states = sorted(r.state for r in open_ledger(results).runs(sid))
    assert states == ["preempted", "queued"]


def test_a_trial_told_to_stop_ends_at_its_next_line(here):
    results = here / "results"
    sid = srsweep.sweep(STUDY, results=results)
    ledger = open_ledger(results)
    record = ledger.claim(sid, "t")
    steps: list[int] = []

    def endless() -> None:
        wandb.init()
        while True:
            steps.append(len(steps))
            time.sleep(0.01)

    trial = FunctionTrial(ledger, record, STUDY, endless, results=results, echo=lambda _: None)
    threading.Timer(2.0, trial.request_stop, args=("early-terminated by hyperband",)).start()
    out = trial.run()
    assert out.state == "stopped" and out.error == "early-terminated by hyperband"
    assert steps and ledger.run(record.id).state == "stopped"


def test_bad_input_raises_the_clis_errors(here):
    with pytest.raises(SpecError, match="method"):
        srsweep.sweep({**STUDY, "method": "gridd"}, results=here / "results")
    with pytest.raises(SrsweepError, match="unknown sweep id 'nope'"):
        srsweep.agent("nope", function=train, results=here / "results")
    with pytest.raises(SrsweepError, match="function: expected a callable"):
        srsweep.agent("nope", function="train", results=here / "results")  # type: ignore[arg-type]


def _deep(levels: int) -> dict:
    d: dict = {"value": 1}
    for _ in range(levels):
        d = {"value": (d,)}  # tuples too: they are read as lists after the check
    return d


def _shared(levels: int) -> list:
    x: list = [1] * 10
    for _ in range(levels):
        x = [x] * 10  # 10 references to one list: 10^levels values written out
    return x


@pytest.mark.parametrize(
    "param, where, rule",
    [
        (_deep(100), "x.value[0]", "nested deeper than 32 levels (the limit)"),
        ({"values": _shared(9)}, "x.values[0]", "over 20000 values (the limit)"),
    ],
    ids=["deep", "shared"],
)
def test_a_dict_spec_over_the_limits_is_refused_before_it_is_copied(here, param, where, rule):
    spec = {"program": "train.py", "method": "grid", "parameters": {"x": param}}
    with pytest.raises(SpecError) as e:
        srsweep.sweep(spec, results=here / "results")
    assert f"sweep config: parameters.{where}" in str(e.value) and rule in str(e.value)
    assert open_ledger(here / "results").sweeps() == []


def test_a_nonfinite_metric_is_flagged_and_bayes_goes_on(here):
    results = here / "results"
    spec = {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }
    sid = srsweep.sweep(spec, results=results)
    calls: list[int] = []

    def sometimes_nan() -> None:
        run = wandb.init()
        calls.append(1)
        wandb.log({"loss": float("nan") if len(calls) % 2 else run.config.x})

    done = srsweep.agent(sid, function=sometimes_nan, count=4, results=results, echo=lambda _: None)
    assert done.states == {"finished": 4}  # W&B's state is kept
    runs = open_ledger(results).runs(sid)
    flagged = [r for r in runs if r.summary.get("nonfinite") == ["loss"]]
    assert len(flagged) == 2 and all(r.state == "finished" for r in flagged)
