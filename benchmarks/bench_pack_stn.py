"""Packed ``stn`` trials against one trial at a time, on the same machine in one run.

Draws N trial configs from ``sweeps/stn_hyper_lr.yaml`` (its grid of hyper lr x init
x_range x seed, the port's width-4 net; past the grid's 24 points the grid repeats with
seeds shifted by 1000 per round), cuts every trial to the same reduced cycle budget, and
times the same trials three ways:

  (a) one trial per process: ``python -m srsweep.cli run stn ARGS_JSON`` per trial, one
      after another, as a plain agent or ``wandb agent`` runs them (W&B disabled);
      measured on a few, extrapolated to all as (b) plus the measured process overhead;
  (b) one after another in this process: ``stn.train`` per trial;
  (c) packed: trials grouped by ``pack_key`` (at most ``--pack`` per pack, as
      ``srsweep agent --pack N`` claims them), ``train_packed`` per group.

Prints trials/hour for each and the ratios. Target: packed >= 20x (a).

    python benchmarks/bench_pack_stn.py [--trials 48] [--cycles 150] [--pack 64] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _timing import run_processes

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "sweeps" / "stn_hyper_lr.yaml"


def draw(n: int, cycles: int) -> list[dict[str, Any]]:
    """N study trials (flat params) with the cycle budget cut to ``cycles``."""
    from srsweep.engine import suggest
    from srsweep.spec import load_spec

    grid = suggest(load_spec(SPEC).raw, [], n, seed=0)
    log_every = max(1, min(10, cycles // 10))  # the study logs every 10 cycles
    return [
        {
            **grid[k % len(grid)],
            "seed": grid[k % len(grid)]["seed"] + 1000 * (k // len(grid)),
            "max_cycles": cycles,
            "log_every": log_every,
        }
        for k in range(n)
    ]


def in_process(cfgs: list[Any]) -> tuple[list[float], list[Any]]:
    """Seconds per trial with ``stn.train``, one after another (b), and the runs."""
    from srsweep.kernels.stn import train
    from srsweep.testing import RecordingRun

    times, runs = [], []
    for cfg in cfgs:
        run = RecordingRun()
        t0 = time.perf_counter()
        train(cfg, run)
        times.append(time.perf_counter() - t0)
        runs.append(run)
    return times, runs


def packed_and_alone(cfgs: list[Any], pack: int) -> tuple[float, float, list[int], float]:
    """Seconds for all trials packed (c) and one after another with ``stn.train`` (b),
    measured pack by pack, alternating, so that drifts of a shared machine's speed hit
    both alike; the pack sizes; the largest difference of a trial's final dist."""
    from srsweep.kernels.stn_pack import pack_key
    from srsweep.kernels.stn_pack import train_packed
    from srsweep.testing import RecordingRun

    groups: dict[Any, list[Any]] = {}
    for cfg in cfgs:
        groups.setdefault(pack_key(cfg), []).append(cfg)
    chunks = [g[i : i + pack] for g in groups.values() for i in range(0, len(g), pack)]
    t_c = t_b = worst = 0.0
    for group in chunks:
        runs = [RecordingRun() for _ in group]
        t0 = time.perf_counter()
        outcome = train_packed(group, runs)
        t_c += time.perf_counter() - t0
        failed = [str(e) for e in outcome if e is not None]
        if failed:
            print(f"  note: {len(failed)} packed trial(s) failed on their own: {failed[0]}")
        times, alone = in_process(group)
        t_b += sum(times)
        for a, p in zip(alone, runs, strict=True):
            if a.saved is not None and p.saved is not None:
                worst = max(worst, abs(a.saved["dist"][-1] - p.saved["dist"][-1]))
    return t_c, t_b, sorted((len(g) for g in chunks), reverse=True), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=48, help="trials drawn from the study")
    ap.add_argument("--cycles", type=int, default=150, help="fixed reduced cycle budget")
    ap.add_argument("--pack", type=int, default=64, help="at most this many trials per pack")
    ap.add_argument(
        "--process-trials",
        type=int,
        default=4,
        help="how many of them (a) runs as processes (the rest is extrapolated)",
    )
    ap.add_argument("--quick", action="store_true", help="24 trials x 20 cycles (CI smoke)")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.cycles, args.process_trials = 24, 20, 1
    try:
        run(args)
    except Exception as e:  # a benchmark that breaks says where, then fails
        traceback.print_exc()
        sys.exit(f"bench_pack_stn: failed: {type(e).__name__}: {e}")


def run(args: argparse.Namespace) -> None:
    import torch

    from srsweep.kernels._config import build
    from srsweep.kernels.stn import STNConfig

    torch.set_num_threads(int(os.environ.get("SRSWEEP_THREADS", "1")))  # as the agent does
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {os.cpu_count()} cores"
    trials = draw(args.trials, args.cycles)
    cfgs = [build(STNConfig, p, "bench") for p in trials]
    print(
        f"stn packing benchmark on {device}, torch threads {torch.get_num_threads()}: "
        f"{len(cfgs)} trials from {SPEC.name}, {args.cycles} cycles each at most"
    )
    in_process(cfgs[:1])  # warm up: imports, allocator
    t_c, t_b, sizes, worst = packed_and_alone(cfgs, max(1, args.pack))
    print(f"  packs: {len(sizes)}, sizes {sizes}")
    k = max(1, min(args.process_trials, len(cfgs)))
    with tempfile.TemporaryDirectory(prefix="bench_pack_stn_") as tmp:
        t_a_k = run_processes("stn", trials[:k], Path(tmp) / "results")
    t_b_k = sum(in_process(cfgs[:k])[0])
    overhead = (sum(t_a_k) - t_b_k) / k  # process start, imports, ledger, model file
    t_a = t_b + overhead * len(cfgs)

    def rate(seconds: float) -> float:
        return len(cfgs) * 3600 / seconds

    print(
        f"  (a) one trial per process: {rate(t_a):9.0f} trials/h  (measured on {k} trials:"
        f" {k * 3600 / sum(t_a_k):.0f} trials/h; extrapolated as (b) + {overhead:.2f} s"
        f" per-process overhead per trial)"
    )
    print(f"  (b) one after another:     {rate(t_b):9.0f} trials/h  ({t_b:.1f} s)")
    print(f"  (c) packed:                {rate(t_c):9.0f} trials/h  ({t_c:.1f} s)")
    print(f"  packed / (a) = {t_a / t_c:.1f}x (target >= 20x),  packed / (b) = {t_b / t_c:.1f}x")
    print(f"  largest |final dist, packed - alone| over the trials: {worst:.1e}")


if __name__ == "__main__":
    main()
