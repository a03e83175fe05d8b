"""The claim loop: a sweep run to its end or to ``count``, early termination, an agent
that stops when trials keep failing, and one run outside any sweep."""

from __future__ import annotations

import re

from srsweep import store
from srsweep.agents import run_agent
from srsweep.agents import run_single
from srsweep.backends.local import LocalBackend


def test_agent_runs_grid_to_exhaustion_and_saves(toy_sweep, results):
    b, sid = toy_sweep(results, {"target": {"values": [1.0, 2.0, 3.0]}, "steps": {"value": 4}})
    lines = []
    res = run_agent(b, sid, results=results, echo=lines.append)
    assert (
        res.states == {"finished": 3} and res.reason == "sweep finished: every grid point has run"
    )
    runs = b.runs(sid)
    assert [len(r.history) for r in runs] == [4, 4, 4]
    assert all(r.config["steps"] == 4 and r.config["opt"]["lr"] == 0.1 for r in runs)
    payload = store.load(runs[0].model_path)
    assert payload["hyperparams"]["target"] == runs[0].params["target"]
    assert [m["_step"] for m in payload["metrics"]] == [0, 1, 2, 3]
    assert payload["summary"]["loss"] == runs[0].summary["loss"]
    assert any("[1] toy-001" in line for line in lines)
    assert any(line.startswith("  toy-001 -> finished") for line in lines)


def test_count_limits_and_a_second_agent_continues(toy_sweep, results):
    b, sid = toy_sweep(results, {"target": {"values": [1, 2, 3]}})
    assert (
        run_agent(b, sid, results=results, count=2, echo=lambda s: None).reason
        == "count of 2 reached"
    )
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert len(res.runs) == 1
    assert sorted(r.params["target"] for r in b.runs(sid)) == [1, 2, 3]


def test_hyperband_early_terminates_bad_runs(toy_sweep, results, monkeypatch):
    import srsweep.tracking as tracking

    b, sid = toy_sweep(
        results,
        {
            "target": {"value": 0.0},
            "w0": {"values": [0.0, 0.5, 5.0]},
            "steps": {"value": 12},
            "opt": {"parameters": {"lr": {"value": 0.01}}},
        },
        metric={"name": "loss", "goal": "minimize"},
        early_terminate={"type": "hyperband", "min_iter": 3, "eta": 2},
    )
    # check for early termination at every step (the real default is every 2 s)
    real = tracking.TrialRun.__init__
    monkeypatch.setattr(
        tracking.TrialRun,
        "__init__",
        lambda self, *a, **k: real(self, *a, **{**k, "check_every": 0.0}),
    )
    run_agent(b, sid, results=results, echo=lambda s: None)
    states = {r.params["w0"]: r.state for r in b.runs(sid)}
    # hyperband keeps the top 1/eta at each band: the third run is far behind at step 3
    assert states == {0.0: "finished", 0.5: "finished", 5.0: "stopped"}
    (bad,) = [r for r in b.runs(sid) if r.state == "stopped"]
    assert len(bad.history) == 3 and "early_terminate" in bad.error


def test_progress_lines_carry_the_time_left_for_the_trial_and_the_sweep(
    toy_sweep, results, monkeypatch
):
    import srsweep.tracking as tracking

    b, sid = toy_sweep(
        results,
        {"target": {"values": [1.0, 2.0, 3.0]}, "steps": {"value": 5}, "sleep": {"value": 0.4}},
    )
    real = tracking.TrialRun.__init__  # a progress line at every step (default: every 5 s)
    monkeypatch.setattr(
        tracking.TrialRun,
        "__init__",
        lambda self, *a, **k: real(self, *a, **{**k, "progress_every": 0.0}),
    )
    lines: list[str] = []
    run_agent(b, sid, results=results, echo=lines.append)
    pattern = re.compile(
        r"  (toy-00\d) step (\d)/5 .*\((\d+)s(?:, ~(\d+)s left)?(?:, sweep ~(\d+)s left)?\)$"
    )
    progress = [m.groups() for line in lines if (m := pattern.match(line))]
    assert {p[0] for p in progress} == {"toy-001", "toy-002", "toy-003"}
    longest = max(r.summary["runtime"] for r in b.runs(sid))  # each at least 5 x 0.4 s
    for name, step, _, trial, sweep in progress:
        waiting = 3 - int(name[-1])  # trials after this one
        if step == "0":  # no rate yet; the sweep's once a trial finished
            assert trial is None and (sweep is None) == (name == "toy-001")
            continue
        assert int(trial) <= 0.4 * (5 - int(step)) * 2 + 1
        # the trial's time left, then each trial to come at 2 s or more
        assert (
            int(trial) + 2 * waiting - 1 <= int(sweep) <= int(trial) + 1.5 * longest * waiting + 1
        )


def test_run_single(results):
    b = LocalBackend(results)
    rec = run_single(
        b, "toy", {"opt.lr": 0.5, "steps": 2}, results=results, source="--set", echo=lambda s: None
    )
    assert rec.state == "finished"
    (stored,) = b.runs(None)
    assert stored.config["opt"]["lr"] == 0.5 and len(stored.history) == 2
    assert store.load(stored.model_path)["w"] == 1.0


def test_agent_stops_when_trials_keep_failing(toy_sweep, results):
    b, sid = toy_sweep(results, {"target": {"values": list(range(8))}, "fail_at": {"value": 0}})
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert res.failed_fast and res.states == {"failed": 5}
    assert res.reason.startswith("5 trials failed in a row within 60s")
    assert "toy failure at step 0" in res.reason


def test_an_agent_stops_once_a_run_reaches_the_metric_target(toy_sweep, results):
    # target 0 is reached exactly (loss 0 from the start): W&B ends the sweep there
    metric = {"name": "loss", "goal": "minimize", "target": 1e-9}
    b, sid = toy_sweep(results, {"target": {"values": [0.0, 5.0, 6.0, 7.0]}}, metric=metric)
    res = run_agent(b, sid, results=results, echo=lambda _: None)
    (only,) = b.runs(sid)
    assert res.states == {"finished": 1} and only.params["target"] == 0.0
    assert res.reason == f"sweep finished: metric.target 1e-09 reached by run {only.id} (0)"


def test_agent_name_carries_the_slurm_job_id(monkeypatch):
    import os
    import socket

    from srsweep.agents import agent_name

    here = f"{socket.gethostname()}-{os.getpid()}"
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    assert agent_name() == here
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert agent_name() == f"{here}-slurm123"
    monkeypatch.setenv("SLURM_JOB_ID", "130")  # a job array's task has an id of its own,
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "123")  # but squeue names it ARRAY_TASK
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert agent_name() == f"{here}-slurm123_7"
