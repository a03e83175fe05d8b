from __future__ import annotations

import os
import signal

import pytest

from srsweep import store
from srsweep.agent import run_agent
from srsweep.agent import run_single
from srsweep.backends.local import LocalBackend
from srsweep.spec import validate


def _sweep(results, params, method="grid", **extra):
    b = LocalBackend(results)
    spec = validate({"program": "toy", "method": method, "parameters": params, **extra}, "t")
    return b, b.create_sweep(spec)


def test_agent_runs_grid_to_exhaustion_and_saves(results):
    b, sid = _sweep(results, {"target": {"values": [1.0, 2.0, 3.0]}, "steps": {"value": 4}})
    lines = []
    res = run_agent(b, sid, results=results, echo=lines.append)
    assert res.states == {"finished": 3} and res.reason == "sweep exhausted"
    runs = b.runs(sid)
    assert [len(r.history) for r in runs] == [4, 4, 4]
    assert all(r.config["steps"] == 4 and r.config["opt"]["lr"] == 0.1 for r in runs)
    payload = store.load(runs[0].model_path)
    assert payload["hyperparams"]["target"] == runs[0].params["target"]
    assert [m["_step"] for m in payload["metrics"]] == [0, 1, 2, 3]
    assert payload["summary"]["loss"] == runs[0].summary["loss"]
    assert any("[1] toy-001" in line for line in lines)
    assert any(line.startswith("  toy-001 -> finished") for line in lines)


def test_count_limits_and_a_second_agent_continues(results):
    b, sid = _sweep(results, {"target": {"values": [1, 2, 3]}})
    assert (
        run_agent(b, sid, results=results, count=2, echo=lambda s: None).reason
        == "count of 2 reached"
    )
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert len(res.runs) == 1
    assert sorted(r.params["target"] for r in b.runs(sid)) == [1, 2, 3]


def test_failures_are_recorded_and_agent_goes_on(results):
    b, sid = _sweep(results, {"fail_at": {"values": [None, 1]}, "nan_at": {"values": [None, 2]}})
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert res.states == {"finished": 1, "failed": 3}
    by = {(r.params["fail_at"], r.params["nan_at"]): r for r in b.runs(sid)}
    assert "RuntimeError: toy failure at step 1" in by[(1, None)].error
    assert "Traceback" in by[(1, None)].error
    assert by[(None, 2)].error == "non-finite loss at step 2"
    assert [h["_step"] for h in by[(None, 2)].history] == [0, 1]
    assert by[(None, None)].error is None


def test_hyperband_early_terminates_bad_runs(results, monkeypatch):
    import srsweep.tracking as tracking

    b, sid = _sweep(
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


def test_sigterm_preempts_the_running_trial(results):
    b, sid = _sweep(results, {"target": {"values": [1, 2]}, "steps": {"value": 50}})
    import srsweep.testing.toy as toy

    real_train = toy.KERNEL.train

    def train(cfg, run):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during the first trial
        real_train(cfg, run)

    object.__setattr__(toy.KERNEL, "train", train)
    try:
        res = run_agent(b, sid, results=results, echo=lambda s: None)
    finally:
        object.__setattr__(toy.KERNEL, "train", real_train)
    assert res.reason == "stopped by signal"
    run, again = b.runs(sid)
    assert run.state == "preempted" and run.error == "preempted by SIGTERM"
    assert 0 < len(run.history) < 50 and run.model_path is not None
    # the trial is queued again as a new attempt; the next agent takes it first
    assert (again.state, again.retry_of, again.attempt) == ("queued", run.id, 2)
    assert again.params == run.params and again.history == []
    res = run_agent(b, sid, results=results, count=1, echo=lambda s: None)
    assert res.runs == [again.id] and b.run(again.id).state == "finished"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_single(results):
    b = LocalBackend(results)
    rec = run_single(
        b, "toy", {"opt.lr": 0.5, "steps": 2}, results=results, source="--set", echo=lambda s: None
    )
    assert rec.state == "finished"
    (stored,) = b.runs(None)
    assert stored.config["opt"]["lr"] == 0.5 and len(stored.history) == 2
    assert store.load(stored.model_path)["w"] == 1.0


def test_agent_stops_when_trials_keep_failing(results):
    b, sid = _sweep(results, {"target": {"values": list(range(8))}, "fail_at": {"value": 0}})
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert res.failed_fast and res.states == {"failed": 5}
    assert res.reason.startswith("5 trials failed in a row within 60s")
    assert "toy failure at step 0" in res.reason


def test_pack_groups_by_pack_key_and_fails_alone(results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = _sweep(
        results,
        {
            "steps": {"values": [3, 4]},
            "target": {"values": [1.0, 2.0]},
            "fail_at": {"values": [None, 2]},
        },
    )
    res = run_agent(b, sid, results=results, pack=8, echo=lambda s: None)
    assert sorted(PACKS) == [4, 4]  # 8 trials, two shapes (steps 3 and 4)
    assert res.states == {"finished": 4, "failed": 4}
    for r in b.runs(sid):
        expected = r.params["steps"] if r.params["fail_at"] is None else 2
        assert len(r.history) == expected
        assert (r.state == "failed") == (r.params["fail_at"] == 2)


def test_pack_one_is_the_unpacked_path(results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = _sweep(results, {"target": {"values": [1.0, 2.0]}})
    assert run_agent(b, sid, results=results, pack=1, echo=lambda s: None).states == {"finished": 2}
    assert PACKS == []


def test_model_path_is_absolute_so_other_directories_find_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b, sid = _sweep(tmp_path / "res", {"target": {"value": 1.0}, "steps": {"value": 2}})
    from pathlib import Path

    run_agent(b, sid, results=Path("res"), echo=lambda s: None)  # relative, as `--results res`
    (run,) = b.runs(sid)
    assert Path(run.model_path).is_absolute()
    monkeypatch.chdir(tmp_path.parent)
    assert store.load(run.model_path)["hyperparams"]["target"] == 1.0


def test_threads_one_per_lone_trial_every_core_per_cpu_pack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from srsweep import agent

    before = torch.get_num_threads()
    monkeypatch.delenv("SRSWEEP_THREADS", raising=False)
    monkeypatch.setattr(agent, "_cores", lambda: 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    try:
        agent._limit_threads(packed=False)
        assert torch.get_num_threads() == 1
        agent._limit_threads(packed=True)
        assert torch.get_num_threads() == 3
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU does the work
        agent._limit_threads(packed=True)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SRSWEEP_THREADS", "2")  # the user's count wins either way
        agent._limit_threads(packed=True)
        assert torch.get_num_threads() == 2
        agent._limit_threads(packed=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_fresh_agent_process_sets_threads_for_a_kernel_whose_torch_loads_lazily(
    tmp_path,
) -> None:
    """Kernel records import no torch, so the agent imports the training path before it
    sets the thread count: a lone trial in a fresh process trains on one thread."""
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: torch's default is one thread, so the check cannot fail")
    code = (
        "import sys\n"
        "from srsweep.agent import run_single\n"
        "from srsweep.backends.local import LocalBackend\n"
        f"b = LocalBackend({str(tmp_path)!r})\n"
        "r = run_single(b, 'lazy', {'device': 'cpu', 'steps': 3, 'history_every': 0},"
        f" results=__import__('pathlib').Path({str(tmp_path)!r}), source='t', echo=lambda s: None)\n"
        "print(r.state, sys.modules['torch'].get_num_threads())\n"  # torch came lazily
    )
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("SRSWEEP_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["finished", "1"]
