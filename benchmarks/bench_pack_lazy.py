"""Packed ``lazy`` trials against one trial at a time, on the same machine in one run.

Takes N trials of ``sweeps/lazy_alpha.yaml``'s grid cut to the small-kernel widths (5 to
100; more seeds are added when N asks for more than the grid holds), sets every trial
to the same reduced step budget, and times the same trials three ways:

  (a) one trial per process: ``python -m srsweep.cli run lazy ARGS_JSON`` per trial, one
      after another, as a plain agent or ``wandb agent`` runs them (W&B disabled);
  (b) one after another in this process: ``lazy.solo.train`` per trial;
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
import time
from pathlib import Path
from typing import Any

import _timing

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
    """Seconds per trial with ``lazy.solo.train``, one after another (b)."""
    from srsweep.kernels.lazy.solo import train
    from srsweep.testing import RecordingRun

    out = []
    for cfg in cfgs:
        t0 = time.perf_counter()
        train(cfg, RecordingRun())
        out.append(time.perf_counter() - t0)
    return out


def packed_and_alone(cfgs: list[Any]) -> tuple[float, float, dict[str, list[float]]]:
    """Seconds for all trials packed by ``pack_key`` (c) and one after another with
    ``lazy.solo.train`` (b), measured pack by pack, alternating, so that drifts of a shared
    machine's speed hit both alike; and per pack (model, width, size): (c), (b)."""
    import torch

    from srsweep.kernels.lazy.config import pack_key
    from srsweep.kernels.lazy.packed import train_packed
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
    _timing.main(
        run,
        doc=__doc__ or "",
        name="bench_pack_lazy",
        trials=54,
        budget=("steps", 1500, "fixed reduced step budget"),
        quick=(18, 300, 2),
    )


def run(args: argparse.Namespace) -> None:
    from srsweep.config import build
    from srsweep.kernels.lazy.config import LazyConfig

    device = _timing.torch_setup()
    trials = draw(args.trials, args.steps)
    cfgs = [build(LazyConfig, p, "bench") for p in trials]
    print(
        f"lazy packing benchmark on {device}, {_timing.threads_note()}: "
        f"{len(cfgs)} trials from {SPEC.name} (widths 5-100, sweep seed "
        f"{SWEEP_SEED}), {args.steps} steps each"
    )
    in_process(cfgs[:1])  # warm up: imports, allocator

    def measure() -> tuple[float, float, dict[str, list[float]]]:
        t_c, t_b, per_pack = packed_and_alone(cfgs)
        return t_b, t_c, per_pack

    best = _timing.at_best_threads(measure)
    per_pack = best.extra
    print(f"  packs: {len(per_pack)}; per pack, packed vs one after another:")
    for name, (c, b) in per_pack.items():
        print(f"    {name:>14}: {c:6.2f} s vs {b:6.2f} s  ({b / c:5.1f}x)")
    t_a_k, overhead = _timing.per_process_overhead(
        "lazy", trials, lambda k: sum(in_process(cfgs[:k])), args.process_trials
    )
    _timing.print_rates(len(cfgs), t_a_k, overhead, best, target_a="20x")


if __name__ == "__main__":
    main()
