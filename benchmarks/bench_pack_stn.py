"""Packed ``stn`` trials against one trial at a time, on the same machine in one run.

Draws N trial configs from ``sweeps/stn_hyper_lr.yaml`` (its grid of hyper lr x init
x_range x seed, the port's width-4 net; past the grid's 24 points the grid repeats with
seeds shifted by 1000 per round), cuts every trial to the same reduced cycle budget, and
times the same trials three ways:

  (a) one trial per process: ``python -m srsweep.cli run stn ARGS_JSON`` per trial, one
      after another, as a plain agent or ``wandb agent`` runs them (W&B disabled);
      measured on a few, extrapolated to all as (b) plus the measured process overhead;
  (b) one after another in this process: ``stn.solo.train`` per trial;
  (c) packed: trials grouped by ``pack_key`` (at most ``--pack`` per pack, as
      ``srsweep agent --pack N`` claims them), ``train_packed`` per group.

Prints trials/hour for each and the ratios. Target: packed >= 20x (a).

    python benchmarks/bench_pack_stn.py [--trials 48] [--cycles 150] [--pack 64] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

import _timing

if TYPE_CHECKING:
    from srsweep.kernels._base import Run

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
    """Seconds per trial with ``stn.solo.train``, one after another (b), and the runs."""
    from srsweep.kernels.stn.solo import train
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
    """Seconds for all trials packed (c) and one after another with ``stn.solo.train`` (b),
    measured pack by pack, alternating, so that drifts of a shared machine's speed hit
    both alike; the pack sizes; the largest difference of a trial's final dist."""
    from srsweep.kernels.stn.config import pack_key
    from srsweep.kernels.stn.packed import train_packed
    from srsweep.testing import RecordingRun

    groups: dict[Any, list[Any]] = {}
    for cfg in cfgs:
        groups.setdefault(pack_key(cfg), []).append(cfg)
    chunks = [g[i : i + pack] for g in groups.values() for i in range(0, len(g), pack)]
    t_c = t_b = worst = 0.0
    for group in chunks:
        runs = [RecordingRun() for _ in group]
        t0 = time.perf_counter()
        outcome = train_packed(group, cast("list[Run]", runs))  # RecordingRun is a Run
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
    def pack_flag(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--pack", type=int, default=64, help="at most this many trials per pack")

    _timing.main(
        run,
        doc=__doc__ or "",
        name="bench_pack_stn",
        trials=48,
        budget=("cycles", 150, "fixed reduced cycle budget"),
        quick=(24, 20, 1),
        extra=pack_flag,
    )


def run(args: argparse.Namespace) -> None:
    from srsweep.config import build
    from srsweep.kernels.stn.config import STNConfig

    device = _timing.torch_setup()
    trials = draw(args.trials, args.cycles)
    cfgs = [build(STNConfig, p, "bench") for p in trials]
    print(
        f"stn packing benchmark on {device}, {_timing.threads_note()}: "
        f"{len(cfgs)} trials from {SPEC.name}, {args.cycles} cycles each at most"
    )
    in_process(cfgs[:1])  # warm up: imports, allocator

    def measure() -> tuple[float, float, tuple[list[int], float]]:
        t_c, t_b, sizes, worst = packed_and_alone(cfgs, max(1, args.pack))
        return t_b, t_c, (sizes, worst)

    best = _timing.at_best_threads(measure)
    sizes, worst = best.extra
    print(f"  packs: {len(sizes)}, sizes {sizes}")
    t_a_k, overhead = _timing.per_process_overhead(
        "stn", trials, lambda k: sum(in_process(cfgs[:k])[0]), args.process_trials
    )
    _timing.print_rates(len(cfgs), t_a_k, overhead, best, target_a="20x")
    print(f"  largest |final dist, packed - alone| over the trials: {worst:.1e}")


if __name__ == "__main__":
    main()
