"""Report and status at the study's scale: a ledger of RUNS runs x STEPS logged steps of
the sd kernel's keys, written through the backend's own write path, then `srsweep
report` and `srsweep status` timed as processes (wall time and peak memory; the best of
``--repeat``), against the floor: reading the same numbers once from a single NumPy file,
timed before each round of the commands (the best of those too; on this VM the page cache
is small, so the file is often read from disk again).

Targets (issue 17, 2 cores): report <= 5 s and <= 1 GB, status <= 1 s, report <= 10x
the floor. With a PostgreSQL ledger beside it (issue 20): the same ledger there, report
and status timed against SQLite's in the same run, each within 1.2x.

    python benchmarks/bench_report.py [--runs 1000] [--steps 4000] [--keep DIR]
                                      [--postgres | --ledger URL]

``--keep DIR`` builds the SQLite ledger (and the floor's file) in DIR the first time
and reuses them when DIR already holds a ledger of the same size, so that a change to
the report can be timed again without the ~3 minutes of writing it.

``--postgres`` starts a throw-away server (``srsweep.testing.postgres``; skipped,
saying why, where there are no server binaries or no psycopg); ``--ledger
postgresql://USER@HOST:PORT/DB`` uses a running one (the sweep is left there).
"""

from __future__ import annotations

import argparse
import contextlib
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
print(took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of a command."""
    proc = subprocess.run(
        [sys.executable, "-c", _TIMER, *cmd], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    took, kb = proc.stdout.split()
    return float(took), int(kb) / 1024


def verdict(ok: bool) -> str:
    return "ok" if ok else "over target"


def measure(
    ledgers: dict[str, tuple[str, str | None]], results: Path, repeat: int, floor_file: Path
) -> tuple[dict[str, dict[str, tuple[float, float]]], list[float]]:
    """``srsweep report`` and ``status`` of each ledger's sweep (name: (sweep id, URL or
    None for the SQLite file under ``results``)), taking turns so that both see the
    machine alike: the best seconds of ``repeat`` and the largest peak MB, per command;
    and the floor's read, once per turn before them (the first may read from disk)."""
    got: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in ledgers}
    floors = []
    cli = [sys.executable, "-m", "srsweep"]
    for _ in range(repeat):
        floors.append(read_once(floor_file))
        for name, (sid, url) in ledgers.items():
            env = {**os.environ, "WANDB_MODE": "disabled", "SRSWEEP_RESULTS": str(results)}
            env.pop("SRSWEEP_LEDGER", None)
            if url is not None:
                env["SRSWEEP_LEDGER"] = url
            for what in ("report", "status"):
                took, mb = timed([*cli, what, sid], env)
                best, peak = got[name].get(what, (took, mb))
                got[name][what] = (min(best, took), max(peak, mb))
    return got, floors


def postgres_why_not() -> str | None:
    """Why the PostgreSQL case cannot run here, or None."""
    from srsweep.testing import postgres

    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'srsweep[postgres]')"
    return postgres.unavailable()


def sqlite_ledger(where: Path, runs: int, steps: int) -> tuple[str, Path]:
    """The SQLite ledger under ``where/results`` (reused when ``where`` holds one of
    this size, from ``--keep``) and the floor's file: the same numbers in one NumPy
    file."""
    results, floor_file, made = where / "results", where / "floor.npy", where / "built.txt"
    size = f"{runs} {steps}"
    if made.is_file() and made.read_text().split("\n")[0] == size and floor_file.is_file():
        sid = made.read_text().split("\n")[1]
        print(f"  SQLite ledger reused from {results}")
    else:
        where.mkdir(parents=True, exist_ok=True)
        made.unlink(missing_ok=True)
        (results / "srsweep.db").unlink(missing_ok=True)
        t0 = time.perf_counter()
        sid, data = build(results, runs, steps)
        mb = (results / "srsweep.db").stat().st_size / 2**20
        print(f"  SQLite ledger written in {time.perf_counter() - t0:.0f} s ({mb:.0f} MB)")
        np.save(floor_file, data)
        del data
        made.write_text(f"{size}\n{sid}\n")
    return sid, floor_file


def read_once(floor_file: Path) -> float:
    """Seconds to read the numbers once from the floor's file (and sum them)."""
    t0 = time.perf_counter()
    np.load(floor_file).sum()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3, help="time each command N times")
    ap.add_argument(
        "--keep", type=Path, default=None, help="build the SQLite ledger here once, then reuse it"
    )
    pg = ap.add_mutually_exclusive_group()
    pg.add_argument(
        "--postgres", action="store_true", help="also on a throw-away PostgreSQL server"
    )
    pg.add_argument("--ledger", default=None, help="also on this postgresql://... ledger")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        where = args.keep or Path(tmp)
        results = where / "results"
        print(f"report and status of {args.runs} runs x {args.steps} steps x {len(KEYS)} keys:")
        sid, floor_file = sqlite_ledger(where, args.runs, args.steps)
        ledgers: dict[str, tuple[str, str | None]] = {"SQLite": (sid, None)}
        url = args.ledger
        if args.postgres:
            why = postgres_why_not()
            if why is None:
                from srsweep.testing.postgres import throwaway_server

                url = stack.enter_context(throwaway_server())
            else:
                print(f"  PostgreSQL: skipped, {why}")
        if url is not None:
            t0 = time.perf_counter()
            pg_sid, _ = build(results, args.runs, args.steps, url)
            print(f"  PostgreSQL ledger written in {time.perf_counter() - t0:.0f} s")
            ledgers["PostgreSQL"] = (pg_sid, url)
        got, floors = measure(ledgers, results, args.repeat, floor_file)
        floor = min(floors)  # the best, as the commands'
        print(
            f"  floor (np.load of the same numbers): {floor:.2f} s, best of {len(floors)} "
            f"(the first: {floors[0]:.2f} s)"
        )
        for name, times in got.items():
            (rep, rep_mb), (st, st_mb) = times["report"], times["status"]
            print(
                f"  {name:10} srsweep report: {rep:7.1f} s, {rep_mb:6.0f} MB peak "
                f"({verdict(rep <= 5 and rep_mb <= 1024)}: <= 5 s, <= 1 GB); "
                f"report / floor = {rep / floor:.0f}x ({verdict(rep <= 10 * floor)}: <= 10x)"
            )
            print(
                f"  {name:10} srsweep status: {st:7.2f} s, {st_mb:6.0f} MB peak "
                f"({verdict(st <= 1)}: <= 1 s)"
            )
        if "PostgreSQL" in got:
            for what in ("report", "status"):
                ratio = got["PostgreSQL"][what][0] / got["SQLite"][what][0]
                print(
                    f"  {what}: PostgreSQL / SQLite = {ratio:.2f}x "
                    f"({verdict(ratio <= 1.2)}: <= 1.2x)"
                )


if __name__ == "__main__":
    main()
