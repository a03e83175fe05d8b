"""Script sweeps: each trial a real process, started as W&B's agent starts it.

The fast tests use a probe script that does not import wandb (it records what it was
given); the slow ones run sweeps/examples/train.py with wandb offline and read its
metrics back while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from srsweep.agents import run_agent
from srsweep.agents import scripts
from srsweep.backends import wandb as wb
from srsweep.backends.local import LocalBackend
from srsweep.spec import load_spec
from srsweep.status import status_lines

EXAMPLES = Path(__file__).resolve().parents[2] / "sweeps" / "examples"

PROBE = """\
import json, os, signal, sys, time
out = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("WANDB_")},
}
with open(os.path.join(os.environ["PROBE_OUT"], os.environ["WANDB_RUN_ID"] + ".json"), "w") as fh:
    json.dump(out, fh)
mode = os.environ.get("PROBE_MODE", "")
if mode == "fail":
    print("probe: something odd", file=sys.stderr)
    raise ValueError("probe failed on purpose")
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode.startswith("children"):  # workers that outlive the script unless stopped
    import subprocess
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            for _ in range(2)]
    with open(os.path.join(os.environ["PROBE_OUT"], "kids"), "w") as fh:
        fh.write(" ".join(str(k.pid) for k in kids))
    if mode == "children-sleep":
        time.sleep(60)
if mode in ("sleep", "stubborn"):
    time.sleep(60)
"""


@pytest.fixture
def fast(monkeypatch):
    """Poll and check often, so tests wait fractions of a second, not seconds."""
    monkeypatch.setattr(scripts, "POLL", 0.05)
    monkeypatch.setattr(scripts, "CHECK_EVERY", 0.2)
    monkeypatch.setenv("WANDB__TRANSACTION_LOG_FLUSH_INTERVAL", "0.2")


@pytest.fixture
def probe(tmp_path, results, monkeypatch, fast):
    """A sweep of the probe script from a spec in tmp_path; returns (backend, id, out)."""
    (tmp_path / "probe.py").write_text(PROBE)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("PROBE_OUT", str(out))

    def make(text: str) -> tuple[LocalBackend, str, Path]:
        spec = tmp_path / "spec.yaml"
        spec.write_text("program: probe.py\n" + text)
        b = LocalBackend(results)
        return b, b.create_sweep(load_spec(spec)), out

    return make


def _agent(b: LocalBackend, sid: str, results: Path, **kw) -> tuple[object, list[str]]:
    lines: list[str] = []
    return run_agent(b, sid, results=results, echo=lines.append, **kw), lines


def test_every_macro_family_reaches_a_real_process(probe, results, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")  # the user chose nothing: offline
    monkeypatch.setenv("PROBE_TAG", "tag-7")
    b, sid, out = probe(
        """method: grid
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args}
  - ${args_no_equals}
  - ${args_no_hyphens}
  - ${args_no_boolean_flags}
  - ${args_json}
  - ${args_json_file}
  - --tag=${envvar:PROBE_TAG}
parameters:
  opt:
    parameters:
      lr: {value: 0.5}
  flag: {value: false}
"""
    )
    res, lines = _agent(b, sid, results)
    assert res.states == {"finished": 1}
    (run,) = b.runs(sid)
    got = json.loads((out / f"{run.id}.json").read_text())
    nested, flat = "{'lr': 0.5}", "--opt={'lr': 0.5}"
    assert got["argv"] == [  # parameters in the order sweeps suggests them
        *["--flag=False", flat],  # ${args}
        *["--flag", "False", "--opt", nested],  # ${args_no_equals}
        *["flag=False", f"opt={nested}"],  # ${args_no_hyphens}
        flat,  # ${args_no_boolean_flags}: a false flag is left out
        json.dumps({"flag": False, "opt": {"lr": 0.5}}),  # ${args_json}
        str(results.resolve() / "wandb" / f"sweep-{sid}" / f"config-{run.id}.json"),
        "--tag=tag-7",  # ${envvar:PROBE_TAG}
    ]
    assert Path(got["cwd"]) == tmp_path  # the spec's folder
    env = got["env"]
    assert (env["WANDB_SWEEP_ID"], env["WANDB_RUN_ID"]) == (sid, run.id)
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(results.resolve())
    params = yaml.safe_load(Path(env["WANDB_SWEEP_PARAM_PATH"]).read_text())
    assert params == {"wandb_version": 1, "opt": {"value": {"lr": 0.5}}, "flag": {"value": False}}
    # a script that logs nothing is a finished run without metrics
    assert run.history == [] and set(run.summary) == {"runtime"} and run.error is None
    assert any(line.startswith("  script-001 -> finished") for line in lines)


def test_the_users_wandb_mode_wins(probe, results, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    b, sid, out = probe("method: grid\nparameters:\n  x: {value: 1}\n")
    _agent(b, sid, results)
    (run,) = b.runs(sid)
    got = json.loads((out / f"{run.id}.json").read_text())
    assert got["env"]["WANDB_MODE"] == "online" and got["argv"] == ["--x=1"]


def test_failing_script_keeps_exit_code_and_stderr_tail(probe, results, monkeypatch):
    monkeypatch.setenv("PROBE_MODE", "fail")
    b, sid, _ = probe("method: grid\nparameters:\n  x: {values: [1, 2, 3, 4, 5, 6]}\n")
    res, lines = _agent(b, sid, results)
    # five failures in a row within a minute stop the agent, as for kernels
    assert res.failed_fast and res.states == {"failed": 5}
    run = b.runs(sid)[0]
    assert run.state == "failed" and run.error.startswith("exit code 1; stderr ends:")
    assert "probe: something odd" in run.error and "Traceback" in run.error
    assert run.error.endswith("ValueError: probe failed on purpose")
    assert "  script-001 -> failed" in "\n".join(lines)
    assert "ValueError: probe failed on purpose" in res.reason


def test_stderr_tail_drops_wandbs_status_lines():
    text = "boom\nTraceback\nValueError: x\n\x1b[34mwandb\x1b[0m: Find logs at: y\nwandb: ERROR z\n"
    assert scripts.stderr_tail(text) == ["boom", "Traceback", "ValueError: x", "wandb: ERROR z"]


@pytest.mark.parametrize("mode", ["sleep", "stubborn"], ids=["sigterm", "sigkill-after-delay"])
def test_sigterm_to_the_agent_preempts_and_requeues_the_script(probe, results, monkeypatch, mode):
    monkeypatch.setenv("PROBE_MODE", mode)
    monkeypatch.setenv("WANDB_AGENT_KILL_DELAY", "1")
    b, sid, out = probe("method: grid\nparameters:\n  x: {values: [1, 2]}\n")

    def preempt() -> None:  # once the script is up, as a scheduler would
        while not any(out.iterdir()):
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=preempt, daemon=True).start()
    res, lines = _agent(b, sid, results)
    assert res.reason == "stopped by signal" and res.states == {"preempted": 1}
    first, retry = b.runs(sid)
    assert first.state == "preempted" and first.error == "preempted by SIGTERM"
    assert retry.state == "queued" and retry.params == first.params
    assert first.summary["runtime"] < 10  # the script's 60 s sleep was cut short


def test_a_second_sigterm_kills_the_script_at_once_and_queues_it_again(probe, results, monkeypatch):
    monkeypatch.setenv("PROBE_MODE", "stubborn")  # ignores SIGTERM; the kill delay is 30 s
    monkeypatch.delenv("WANDB_AGENT_KILL_DELAY", raising=False)
    b, sid, out = probe("method: grid\nparameters:\n  x: {values: [1, 2]}\n")

    def preempt_twice() -> None:
        while not any(out.iterdir()):
            threading.Event().wait(0.02)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(0.3)

    threading.Thread(target=preempt_twice, daemon=True).start()
    res, _ = _agent(b, sid, results)
    assert (res.reason, res.signal, res.states) == (
        "stopped by signal",
        signal.SIGTERM,
        {"preempted": 1},
    )
    first, again = b.runs(sid)
    assert first.state == "preempted"
    assert first.error == "interrupted by a second signal (SIGTERM)"
    assert first.summary["runtime"] < 5
    # the grid point is not lost: its next attempt is queued
    assert (again.state, again.retry_of, again.params) == ("queued", first.id, first.params)


def test_bayes_treats_a_script_without_metrics_by_its_impute_rule(probe, results):
    b, sid, _ = probe(
        "method: bayes\nmetric: {name: loss, goal: minimize, impute: worst}\n"
        "parameters:\n  x: {min: 0.0, max: 1.0}\n"
    )
    res, _ = _agent(b, sid, results, count=3)
    assert res.states == {"finished": 3}
    assert len({r.params["x"] for r in b.runs(sid)}) == 3


def test_runs_that_never_log_the_metric_are_warned_about_once(probe, results, tmp_path):
    b, sid, _ = probe("method: grid\nmetric: {name: acc}\nparameters:\n  x: {values: [1, 2, 3]}\n")
    res, lines = _agent(b, sid, results)
    assert res.states == {"finished": 3}
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: run script-001 finished without logging 'acc' (logged: nothing); the "
        "sweep's metric is 'acc', so its runs cannot be ranked: check metric.name in "
        f"{tmp_path / 'spec.yaml'}; said once per agent"
    ]
    # the warning follows the run's outcome line
    assert lines[lines.index(warnings[0]) - 1].startswith("  script-001 -> finished")


def test_a_missing_program_at_run_time_fails_the_trial(probe, results, tmp_path):
    b, sid, _ = probe("method: grid\nparameters:\n  x: {value: 1}\n")
    (tmp_path / "probe.py").unlink()  # gone since the sweep was created
    b.set_sweep_state(sid, "active")
    res, _ = _agent(b, sid, results)
    (run,) = b.runs(sid)
    assert run.state == "failed" and "exit code 2" in run.error  # python: no such file


def _example(tmp_path: Path, name: str, **params: object) -> Path:
    """An example spec and train.py copied to tmp_path, with some parameters changed."""
    shutil.copy(EXAMPLES / "train.py", tmp_path / "train.py")
    raw = yaml.safe_load((EXAMPLES / name).read_text())
    raw["parameters"].update({k: {"value": v} for k, v in params.items()})
    (tmp_path / name).write_text(yaml.safe_dump(raw))
    return tmp_path / name


@pytest.mark.slow
def test_hyperband_stops_the_bad_run_of_the_example_while_it_runs(
    tmp_path, results, monkeypatch, fast
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    b = LocalBackend(results)
    sid = b.create_sweep(load_spec(_example(tmp_path, "grid_hyperband.yaml", delay=0.05)))
    res, _ = _agent(b, sid, results)
    runs = b.runs(sid)
    assert [r.params["optimizer"]["lr"] for r in runs] == [1.0, 0.3, 0.001]
    assert [r.state for r in runs] == ["finished", "finished", "stopped"], [r.error for r in runs]
    good, _, bad = runs
    # metrics came back from the script's offline run, with wandb's own step numbers
    assert [h["_step"] for h in good.history] == list(range(40))
    assert {"loss", "val_loss", "val_acc"} <= set(good.history[0])
    assert good.summary["val_loss"] == good.history[-1]["val_loss"]
    # stopped while it ran, from the metrics read live (the script logs 40 steps)
    assert 3 <= len(bad.history) < 40 and "early_terminate" in bad.error
    # wandb.config held the nested and boolean parameters
    assert good.config["optimizer"] == {"lr": 1.0, "momentum": 0.5}
    assert good.config["normalize"] is True
    # the offline runs are where `srsweep sync` finds them
    assert len(wb.offline_dirs(results, [r.id for r in runs])) == 3


@pytest.mark.slow
def test_boolean_flags_and_hydra_style_commands_run_the_example(tmp_path, results, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    b = LocalBackend(results)
    flags = b.create_sweep(load_spec(_example(tmp_path, "flags.yaml", steps=5)))
    _agent(b, flags, results, count=2)
    hydra = b.create_sweep(load_spec(_example(tmp_path, "hydra.yaml", steps=5)))
    _agent(b, hydra, results, count=1)
    for r in b.runs(flags) + b.runs(hydra):
        assert r.state == "finished" and len(r.history) == 5, r.error
    # train.py knows the learning rate only from its command line (--lr=, optimizer.lr=)
    assert {r.params["normalize"] for r in b.runs(flags)} == {True, False}
    for r in b.runs(flags):
        assert r.config["optimizer"]["lr"] == r.params["lr"]
    (h,) = b.runs(hydra)
    assert h.config["optimizer"]["lr"] == pytest.approx(h.params["optimizer.lr"])
    assert h.config["optimizer"]["momentum"] == h.params["optimizer.momentum"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("mode", "state"), [("children", "finished"), ("children-sleep", "stopped")]
)
def test_a_trials_child_processes_end_with_it(probe, results, monkeypatch, mode, state):
    monkeypatch.setenv("PROBE_MODE", mode)
    b, sid, out = probe("method: grid\nparameters:\n  x: {values: [1]}\n")
    record = b.claim(sid, "t")
    trial = scripts.ScriptTrial(
        b, record, b.sweep(sid).spec, out.parent, results=results, echo=lambda _: None
    )
    if state == "stopped":
        threading.Timer(3.0, trial.request_stop, args=("stopped by the test",)).start()
    assert trial.run().state == state
    kids = [int(p) for p in (out / "kids").read_text().split()]
    deadline = time.monotonic() + 5
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)], "a worker of the trial outlived it"


def test_a_command_that_cannot_start_fails_the_trial_saying_so(probe, results):
    b, sid, _ = probe(
        "command: [./no-such-launcher, '${program}']\nmethod: grid\nparameters:\n  x: {value: 1}\n"
    )
    res, _ = _agent(b, sid, results)
    (run,) = b.runs(sid)
    assert run.state == "failed" and "cannot start the trial's command" in run.error
    assert "no-such-launcher" in run.error


NAN_SCRIPT = """\
import math, wandb
run = wandb.init()
for v in [1.0, math.nan, math.inf, 0.5]:
    wandb.log({"loss": v, "acc": 0.5})
run.finish()
"""


@pytest.mark.slow
def test_nan_or_inf_logged_by_a_script_is_flagged_and_the_run_keeps_its_state(
    tmp_path, results, monkeypatch, fast
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    (tmp_path / "nan.py").write_text(NAN_SCRIPT)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "program: nan.py\nmethod: grid\nmetric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {value: 1}\n"
    )
    b = LocalBackend(results)
    sid = b.create_sweep(load_spec(spec))
    _agent(b, sid, results)
    (run,) = b.runs(sid)
    assert run.state == "finished"  # as on W&B: the script exited 0
    assert run.summary["nonfinite"] == ["loss"] and run.summary["loss"] == 0.5
    assert [h["loss"] for h in run.history][:2] == [1.0, pytest.approx(float("nan"), nan_ok=True)]
    (line,) = [ln for ln in status_lines(b, sid) if ln.startswith(run.id)]
    assert "finished (NaN/inf: loss)" in line


def test_nonfinite_names_each_metric_logged_as_nan_or_inf():
    history = [{"_step": 0, "a": 1.0, "b": float("inf")}, {"_step": 1, "a": float("nan")}]
    assert scripts.nonfinite(history, {"c": -float("inf"), "d": "nan"}) == ["a", "b", "c"]
    assert scripts.nonfinite([{"_step": 0, "a": 1}], {"a": 1.0}) == []
