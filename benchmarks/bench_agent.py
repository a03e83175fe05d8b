"""Agent overhead per trial: claim, log, save and record, with the kernel excluded.

Runs a grid of trials of the test-only ``toy`` kernel (a few microseconds of work each)
through the real agent loop and ledger, and prints milliseconds per trial, with wandb
mirroring off and offline; then the same for a function sweep
(``srsweep.agent(function=...)``), counting only the time outside the user's function.
Target: <= 50 ms per trial.

    python benchmarks/bench_agent.py [--trials 100] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def measure(trials: int, mode: str) -> tuple[float, float]:
    """Seconds per trial for ``trials`` toy trials with ``WANDB_MODE=mode``: in the agent
    loop, and including the deferred offline W&B writes drained at exit."""
    from srsweep.agents import run_agent
    from srsweep.backends.local import LocalBackend
    from srsweep.spec import validate
    from srsweep.tracking import flush_wandb

    os.environ["WANDB_MODE"] = mode
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        backend = LocalBackend(results)
        spec = validate(
            {
                "program": "toy",
                "method": "grid",
                "parameters": {"target": {"values": list(range(trials))}, "steps": {"value": 5}},
            },
            "bench",
        )
        sid = backend.create_sweep(spec)
        run_agent(backend, sid, results=results, count=1, echo=lambda s: None)  # warm up
        t0 = time.perf_counter()
        res = run_agent(backend, sid, results=results, echo=lambda s: None)
        took = time.perf_counter() - t0
        flush_wandb()
        drained = time.perf_counter() - t0
        assert res.states == {"finished": trials - 1}, res.states
        backend.close()
    return took / (trials - 1), drained / (trials - 1)


def measure_function(trials: int) -> tuple[float, float]:
    """Per trial of a function sweep (``srsweep.agent(function=...)``): seconds outside
    the user's function (claim, parameter file, wandb reset, reading the run back,
    recording), and seconds inside it (wandb.init, three logs, finish: wandb's own)."""
    import wandb

    from srsweep import api

    inside: list[float] = []

    def train() -> None:
        t0 = time.perf_counter()
        run = wandb.init(config={"steps": 3})
        for i in range(run.config.steps):
            wandb.log({"loss": 1.0 / (i + 1)})
        run.finish()
        inside.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            spec = {
                "program": "train.py",
                "method": "grid",
                "parameters": {"x": {"values": list(range(trials))}},
            }
            Path("train.py").write_text("")
            sid = api.sweep(spec, results="results")
            api.agent(sid, function=train, count=1, results="results", echo=lambda s: None)
            inside.clear()
            t0 = time.perf_counter()
            res = api.agent(sid, function=train, results="results", echo=lambda s: None)
            took = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
    assert res.states == {"finished": trials - 1}, res.states
    n = trials - 1
    return (took - sum(inside)) / n, sum(inside) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="30 trials (CI smoke)")
    args = ap.parse_args()
    trials = 30 if args.quick else args.trials
    os.environ.setdefault("SRSWEEP_KERNELS", "toy=srsweep.testing.toy")
    print(f"agent overhead per trial ({trials} trials of a no-op kernel, same machine, one run):")
    for mode in ("disabled", "offline"):
        per, drained = measure(trials, mode)
        verdict = "ok" if per <= 0.050 else "over the 50 ms target"
        print(
            f"  WANDB_MODE={mode:9} {per * 1000:7.1f} ms/trial in the agent loop ({verdict}); "
            f"{drained * 1000:.1f} ms/trial including background W&B writes"
        )
    n = min(trials, 20)  # each call starts a wandb run: seconds, all of it wandb's
    outside, inside = measure_function(n)
    verdict = "ok" if outside <= 0.050 else "over the 50 ms target"
    print(
        f"  function trials ({n}): {outside * 1000:7.1f} ms/trial outside the function "
        f"({verdict}); {inside * 1000:.0f} ms/trial inside it (wandb.init/log/finish)"
    )


if __name__ == "__main__":
    main()
