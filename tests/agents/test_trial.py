"""One kernel trial's life: its outcome and error in the ledger, its model file, its threads."""

from __future__ import annotations

import os

import pytest

from srsweep import store
from srsweep.agents import run_agent


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
    from pathlib import Path

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
