"""One kernel trial's life: its outcome and error in the ledger, its model file, its threads."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from srsweep import kernels
from srsweep import store
from srsweep import tracking
from srsweep.agents import run_agent
from srsweep.backends.local import LocalBackend
from srsweep.spec import validate


def test_failures_are_recorded_and_agent_goes_on(toy_sweep, results):
    b, sid = toy_sweep(results, {"fail_at": {"values": [None, 1]}, "nan_at": {"values": [None, 2]}})
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert res.states == {"finished": 1, "failed": 3}
    by = {(r.params["fail_at"], r.params["nan_at"]): r for r in b.runs(sid)}
    assert "RuntimeError: toy failure at step 1" in by[(1, None)].error
    assert "Traceback" in by[(1, None)].error
    assert by[(None, 2)].error == "non-finite loss at step 2"
    assert [h["_step"] for h in by[(None, 2)].history] == [0, 1]
    assert by[(None, None)].error is None


def test_model_path_is_absolute_so_other_directories_find_it(toy_sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b, sid = toy_sweep(tmp_path / "res", {"target": {"value": 1.0}, "steps": {"value": 2}})
    run_agent(b, sid, results=Path("res"), echo=lambda s: None)  # relative, as `--results res`
    (run,) = b.runs(sid)
    assert Path(run.model_path).is_absolute()
    monkeypatch.chdir(tmp_path.parent)
    assert store.load(run.model_path)["hyperparams"]["target"] == 1.0


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
        "from srsweep.agents import run_single\n"
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


SD = {
    "device": {"value": "cpu"},
    "epochs": {"value": 100},
    "log_freq": {"value": 10},
    "arch.lat_size": {"value": 3},
    "disc.hid_num": {"value": 2},
    "disc.hid_size": {"value": 16},
    "disc.iters": {"value": 2},
}


def _sd_sweep(results: Path) -> tuple[LocalBackend, str]:
    b = LocalBackend(results)
    return b, b.create_sweep(validate({"program": "sd", "method": "grid", "parameters": SD}, "t"))


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


@pytest.mark.parametrize(("signals", "step"), [(1, 50), (2, 40)], ids=["once", "twice"])
def test_an_interrupted_sd_trial_resumes_from_its_last_checkpoint(
    tmp_path, monkeypatch, signals, step
):
    monkeypatch.setattr(tracking, "CHECKPOINT_EVERY", 0.0)  # a checkpoint at every log
    kernel = kernels.get("sd")
    real = kernel.train
    real.load()  # torch imported, so that the agent sets one thread, as for the others

    def interrupted(cfg, run):  # signalled just after the checkpoint of epoch 40
        checkpoint = run.checkpoint

        def then_signal(state, at):
            checkpoint(state, at)
            if at == 40:
                for _ in range(signals):
                    os.kill(os.getpid(), signal.SIGTERM)

        run.checkpoint = then_signal
        real(cfg, run)

    b, sid = _sd_sweep(tmp_path / "a")
    object.__setattr__(kernel, "train", interrupted)
    try:
        res = run_agent(b, sid, results=tmp_path / "a", echo=lambda s: None)
    finally:
        object.__setattr__(kernel, "train", real)
    assert res.signal == signal.SIGTERM
    first, again = b.runs(sid)
    assert first.state == "preempted" and again.state == "queued"
    # once: it stopped at its next log and saved; twice: cut short, its checkpoint is left
    assert store.load(first.model_path)["resume_step"] == step
    lines: list[str] = []
    run_agent(b, sid, results=tmp_path / "a", echo=lines.append)
    resumed = b.run(again.id)
    assert resumed.state == "finished" and resumed.summary["resumed_from_step"] == step + 1
    assert any(f"resumes at step {step + 1}" in ln for ln in lines)
    # the resumed run holds the whole history, as if it had never stopped
    b2, sid2 = _sd_sweep(tmp_path / "b")
    run_agent(b2, sid2, results=tmp_path / "b", echo=lambda s: None)
    (whole,) = b2.runs(sid2)
    assert [h["_step"] for h in resumed.history] == [*range(0, 100, 10), 99]
    assert _without_time(resumed.history) == _without_time(whole.history)
    assert resumed.summary["avg_acc"] == whole.summary["avg_acc"]
    assert "resumed_from_step" not in whole.summary


def test_a_rerun_of_a_failed_trial_starts_afresh_and_says_so(toy_sweep, results):
    b, sid = toy_sweep(results, {"fail_at": {"value": 1}})
    run_agent(b, sid, results=results, echo=lambda s: None)
    b.retry(sid, ("failed",))
    b.set_sweep_state(sid, "active")
    run_agent(b, sid, results=results, echo=lambda s: None)
    first, again = b.runs(sid)
    assert again.retry_of == first.id and again.summary["resumed_from_step"] == 0
