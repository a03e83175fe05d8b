"""Packed ``lazy`` trials against one trial at a time, on the same machine in one run.

Takes N trials of ``sweeps/lazy_alpha.yaml``'s grid cut to the small-kernel widths (5 to
100; more seeds are added when N asks for more than the grid holds), sets every trial
to the same reduced step budget, and times the same trials three ways:

  (a) one trial per process: ``python -m srsweep.cli run lazy ARGS_JSON`` per trial, one
      after another, as a plain agent or ``wandb agent`` runs them (W&B disabled);
  (b) one after another in this process: ``lazy.train`` per trial;
  (c) packed: trials grouped by ``pack_key`` (one pack per model and width), then
      ``train_packed`` per group.

Prints trials/hour for each and the ratios. Target (issue, small kernels): packed >= 20x
(a). The smaller the nets and the larger the packs, the larger the gain: a step of a
tiny net is launch and Python overhead, which a pack pays once for all its trials. The
default, the whole small-kernel grid, makes packs of 9 (3 α x 3 seeds); deep width-100
nets are matmul-bound and gain least. (a) pays a fixed cost per process, so its ratio
shrinks towards packed/(b) as the step budget grows to the sweep's 50000.

    python benchmarks/bench_pack_lazy.py [--trials 54] [--steps 1500] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _timing import run_processes

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "sweeps" / "lazy_alpha.yaml"
SWEEP_SEED = 1234


def draw(n: int, steps: int) -> list[dict[str, Any]]:
    """N grid trials (nested params) of widths 5-100, the step budget cut to ``steps``."""
    from srsweep.engine import suggest
    from srsweep.spec import load_spec

    raw = load_spec(SPEC).raw
    params = dict(raw["parameters"])
    params["width"] = {"values": [w for w in params["width"]["values"] if 5 <= w <= 100]}
    per_seed = math.prod(len(p.get("values", [0])) for k, p in params.items() if k != "seed")
    seeds = max(len(params["seed"]["values"]), math.ceil(n / per_seed))
    params["seed"] = {"values": list(range(seeds))}
    trials = suggest({**raw, "parameters": params}, [], n, seed=SWEEP_SEED)
    return [{**p, "steps": steps} for p in trials]


def in_process(cfgs: list[Any]) -> list[float]:
    """Seconds per trial with ``lazy.train``, one after another (b)."""
    from srsweep.kernels.lazy import train
    from srsweep.testing import RecordingRun

    out = []
    for cfg in cfgs:
        t0 = time.perf_counter()
        train(cfg, RecordingRun())
        out.append(time.perf_counter() - t0)
    return out


def packed_and_alone(cfgs: list[Any]) -> tuple[float, float, dict[str, list[float]]]:
    """Seconds for all trials packed by ``pack_key`` (c) and one after another with
    ``lazy.train`` (b), measured pack by pack, alternating, so that drifts of a shared
    machine's speed hit both alike; and per pack (model, width, size): (c), (b)."""
    import torch

    from srsweep.kernels.lazy_pack import pack_key
    from srsweep.kernels.lazy_pack import train_packed
    from srsweep.testing import RecordingRun

    groups: dict[Any, list[Any]] = {}
    for cfg in cfgs:
        groups.setdefault(pack_key(cfg), []).append(cfg)
    cuda = torch.cuda.is_available()
    t_c = t_b = 0.0
    per_pack = {}
    for group in groups.values():
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        outcome = train_packed(group, [RecordingRun() for _ in group])
        if cuda:
            torch.cuda.synchronize()
        c = time.perf_counter() - t0
        failed = [str(e) for e in outcome if e is not None]
        if failed:
            print(f"  note: {len(failed)} packed trial(s) failed on their own: {failed[0]}")
        b = sum(in_process(group))
        t_c, t_b = t_c + c, t_b + b
        g0 = group[0]
        per_pack[f"{g0.model} {g0.width:>3} x{len(group)}"] = [c, b]
    return t_c, t_b, per_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=54, help="trials drawn from the grid")
    ap.add_argument("--steps", type=int, default=1500, help="fixed reduced step budget")
    ap.add_argument(
        "--process-trials",
        type=int,
        default=4,
        help="how many of them (a) runs as processes (the rest is extrapolated)",
    )
    ap.add_argument("--quick", action="store_true", help="18 trials x 300 steps (CI smoke)")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.steps, args.process_trials = 18, 300, 2
    try:
        run(args)
    except Exception as e:  # a benchmark that breaks says where, then fails
        traceback.print_exc()
        sys.exit(f"bench_pack_lazy: failed: {type(e).__name__}: {e}")


def run(args: argparse.Namespace) -> None:
    import torch

    from srsweep.kernels._config import build
    from srsweep.kernels.lazy import LazyConfig

    torch.set_num_threads(int(os.environ.get("SRSWEEP_THREADS", "1")))  # as the agent does
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {os.cpu_count()} cores"
    trials = draw(args.trials, args.steps)
    cfgs = [build(LazyConfig, p, "bench") for p in trials]
    print(
        f"lazy packing benchmark on {device}, torch threads {torch.get_num_threads()}: "
        f"{len(cfgs)} trials from {SPEC.name} (widths 5-100, sweep seed "
        f"{SWEEP_SEED}), {args.steps} steps each"
    )
    in_process(cfgs[:1])  # warm up: imports, allocator
    t_c, t_b, per_pack = packed_and_alone(cfgs)
    print(f"  packs: {len(per_pack)}; per pack, packed vs one after another:")
    for name, (c, b) in per_pack.items():
        print(f"    {name:>14}: {c:6.2f} s vs {b:6.2f} s  ({b / c:5.1f}x)")
    k = max(1, min(args.process_trials, len(cfgs)))
    with tempfile.TemporaryDirectory(prefix="bench_pack_lazy_") as tmp:
        t_a_k = run_processes("lazy", trials[:k], Path(tmp) / "results")
    t_b_k = sum(in_process(cfgs[:k]))
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
    print(f"  agent overhead estimate: {overhead:.2f} s per trial as its own process")


if __name__ == "__main__":
    main()
