"""Report and status at the study's scale: a ledger of RUNS runs x STEPS logged steps of
the sd kernel's keys, written through the backend's own write path, then `srsweep
report` and `srsweep status` timed as processes (wall time and peak memory), against
the floor: reading the same numbers once from a single NumPy file.

Targets (issue 17, 2 cores): report <= 5 s and <= 1 GB, status <= 1 s, report <= 10x
the floor.

    python benchmarks/bench_report.py [--runs 1000] [--steps 4000] [--ledger URL] [--keep DIR]

``--ledger postgresql://USER@HOST:PORT/DB`` builds the ledger on a PostgreSQL server
instead of a temporary SQLite file (the sweep is left there). ``--keep DIR`` builds the
SQLite ledger and the floor's file in DIR and leaves them there; a later run with the
same DIR, runs and steps reuses them (building 1000 x 4000 takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

KEYS = ("acc", "avg_acc", "epoch", "gp", "loss", "loss_fake", "loss_real", "time")


def build(
    results: Path, runs: int, steps: int, ledger_url: str | None = None
) -> tuple[str, NDArray[np.float64]]:
    """The ledger (under ``results``, or at ``ledger_url``), and the same numbers as one
    array (runs, steps, keys)."""
    from srsweep.backends import open_ledger
    from srsweep.spec import validate

    spec = validate(
        {
            "program": "sd",
            "method": "random",
            "metric": {"name": "avg_acc", "goal": "maximize"},
            "parameters": {
                "epochs": {"value": steps},
                "log_freq": {"value": 1},
                "disc": {
                    "parameters": {
                        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
                        "hid_num": {"values": [1, 2, 4, 8]},
                        "gp": {"values": [0.0, 1e-4, 1e-2]},
                    }
                },
            },
        },
        "bench",
    )
    ledger = open_ledger(results, ledger_url)
    sid = ledger.create_sweep(spec)
    rng = np.random.default_rng(0)
    data = np.empty((runs, steps, len(KEYS)))
    for i in range(runs):
        r = ledger.claim(sid, "bench")
        assert r is not None
        acc = np.clip(0.5 + np.cumsum(rng.normal(0.0005, 0.01, steps)), 0, 1)
        data[i] = rng.normal(size=(steps, len(KEYS)))
        data[i, :, 0], data[i, :, 1], data[i, :, 2] = acc, acc, np.arange(steps)
        for at in range(0, steps, 1000):  # the agent logs in chunks as it flushes
            ledger.log(
                r.id,
                [
                    {"_step": s, **dict(zip(KEYS, map(float, data[i, s]), strict=True))}
                    for s in range(at, min(steps, at + 1000))
                ],
            )
        last = dict(zip(KEYS, map(float, data[i, -1]), strict=True))
        ledger.finish(r.id, "finished", summary={**last, "runtime": 1.0})
        if (i + 1) % max(1, runs // 10) == 0:
            print(f"  built {i + 1}/{runs} runs", flush=True)
    ledger.close()
    return sid, data


# Runs the command from a fresh, small process and prints its wall time and peak RSS:
# on Linux a child's ru_maxrss starts at its parent's resident size when it forks, so
# measured from this process (which holds the ledger's numbers) it would count those.
_TIMER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
took = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(took, use.ru_utime + use.ru_stime, use.ru_maxrss)
sys.exit(code)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident MB of a command."""
    proc = subprocess.run(
        [sys.executable, "-c", _TIMER, *cmd], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    took, cpu, kb = proc.stdout.split()
    return float(took), float(cpu), int(kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--ledger", default=None, help="postgresql://... (default: SQLite)")
    ap.add_argument("--keep", type=Path, default=None, help="build in DIR, or reuse it")
    args = ap.parse_args()
    if args.keep is not None and args.ledger is not None:
        ap.error("--keep reuses a SQLite ledger; it does not go with --ledger")
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            tmp = args.keep
            tmp.mkdir(parents=True, exist_ok=True)
        results = tmp / "results"
        floor_file = tmp / "floor.npy"
        # what a kept folder holds, so that a run asking for another size rebuilds it
        made = tmp / "bench.json"
        size = {"runs": args.runs, "steps": args.steps}
        print(f"report and status of {args.runs} runs x {args.steps} steps x {len(KEYS)} keys:")
        kept = json.loads(made.read_text()) if made.exists() else {}
        if args.keep is not None and all(kept.get(k) == v for k, v in size.items()):
            sid = kept["sid"]
            print(f"  reusing the ledger in {tmp}")
        else:
            for old in (made, floor_file, *results.glob("srsweep.db*")):
                old.unlink(missing_ok=True)
            t0 = time.perf_counter()
            sid, data = build(results, args.runs, args.steps, args.ledger)
            where = (
                f" ({(results / 'srsweep.db').stat().st_size / 2**20:.0f} MB)"
                if args.ledger is None
                else f" at {args.ledger}"
            )
            print(f"  ledger written in {time.perf_counter() - t0:.0f} s{where}")
            np.save(floor_file, data)
            del data
            made.write_text(json.dumps({**size, "sid": sid}))
        t0 = time.perf_counter()
        np.load(floor_file).sum()
        floor = time.perf_counter() - t0
        env = {**os.environ, "WANDB_MODE": "disabled", "SRSWEEP_RESULTS": str(results)}
        if args.ledger is not None:
            env["SRSWEEP_LEDGER"] = args.ledger
        cli = [sys.executable, "-m", "srsweep"]
        rep, rep_cpu, rep_mb = timed([*cli, "report", sid], env)
        st, st_cpu, st_mb = timed([*cli, "status", sid], env)

        def verdict(ok: bool) -> str:
            return "ok" if ok else "over target"

        print(f"  floor (np.load of the same numbers): {floor:.2f} s")
        print(
            f"  srsweep report: {rep:7.1f} s ({rep_cpu:.1f} s CPU), {rep_mb:6.0f} MB peak "
            f"({verdict(rep <= 5 and rep_mb <= 1024)}: <= 5 s, <= 1 GB); "
            f"report / floor = {rep / floor:.0f}x ({verdict(rep <= 10 * floor)}: <= 10x)"
        )
        print(
            f"  srsweep status: {st:7.1f} s ({st_cpu:.1f} s CPU), {st_mb:6.0f} MB peak "
            f"({verdict(st <= 1)}: <= 1 s)"
        )


if __name__ == "__main__":
    main()
