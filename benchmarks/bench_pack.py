"""Packed ``sd`` trials against one trial at a time, on the same machine in one run.

Draws N trial configs from ``sweeps/sd_study.yaml`` (fixed sweep seed), cuts every trial
to the same reduced epoch budget, and times the same trials three ways:

  (a) one trial per process: ``python -m srsweep.cli run sd ARGS_JSON`` per trial, one
      after another, as a plain agent or ``wandb agent`` runs them (W&B disabled);
  (b) one after another in this process: ``sd.train`` per trial;
  (c) packed: trials grouped by ``pack_key``, ``train_packed`` per group.

On CPU, (b) and (c) are timed with one torch thread and with every core, and each is
compared at its faster count (``SRSWEEP_THREADS`` fixes one count). Prints trials/hour
for each and the ratios. Targets (issue): on 2 CPU cores packed >= 5x
(a) and >= 2x (b); on a CUDA GPU >= 100x with >= 256 trials in flight, and per-trial
memory low enough for >= 1000 critics of 8x512 on an 80 GB GPU.

    python benchmarks/bench_pack.py [--trials 64] [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import _timing

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "sweeps" / "sd_study.yaml"
SWEEP_SEED = 1234
# fp32 (non-tensor-core) peak, FLOP/s: torch's fp32 matmuls do not use TF32 by default
PEAK_FP32 = {
    "H100 SXM": 67e12,
    "H100 PCIe": 51e12,
    "H100": 67e12,
    "H200": 67e12,
    "A100": 19.5e12,
    "L40S": 91.6e12,
    "L4": 30.3e12,
    "A10": 31.2e12,
    "V100": 15.7e12,
}


def draw(n: int, epochs: int) -> list[dict[str, Any]]:
    """N study trials (nested params) with the epoch budget cut to ``epochs``."""
    from srsweep.engine import suggest
    from srsweep.spec import load_spec

    params = suggest(load_spec(SPEC).raw, [], n, seed=SWEEP_SEED)
    log_freq = max(1, epochs // 2)  # a few logs per trial, as a long run logs every 25
    return [{**p, "epochs": epochs, "log_freq": log_freq} for p in params]


def critic_flops(cfg: Any) -> float:
    """Approximate matmul FLOPs of one trial: per critic step, forward + input and weight
    gradients on 2 * lat samples, plus (gp > 0) the penalty's forward, input gradient
    and its double backward on lat samples (~4 passes)."""
    d, n_points = cfg.disc, 700
    nums = d.hid_num if isinstance(d.hid_num, tuple) else (d.hid_num, d.hid_num)
    sizes = d.hid_size if isinstance(d.hid_size, tuple) else (d.hid_size, d.hid_size)
    ext = cfg.ext_channels
    embed = cfg.ext_type == "embed" and ext > 0
    widths = [n_points * (1 if embed else 1 + ext)] + [sizes[1]] * nums[1] + [1]
    macs = sum(a * b for a, b in zip(widths, widths[1:], strict=False))  # per sample
    if embed:
        e = [1 + ext] + [sizes[0]] * nums[0] + [1]
        macs += n_points * sum(a * b for a, b in zip(e, e[1:], strict=False))
    lat = cfg.arch.lat_size
    per_step = 2 * macs * (3 * 2 * lat + (4 * lat if d.gp > 0 else 0))
    return float(per_step * d.iters * cfg.epochs)


def in_process(cfgs: list[Any]) -> list[float]:
    """Seconds per trial with ``sd.train``, one after another (b)."""
    from srsweep.kernels.sd.solo import train
    from srsweep.testing import RecordingRun

    out = []
    for cfg in cfgs:
        t0 = time.perf_counter()
        train(cfg, RecordingRun())
        out.append(time.perf_counter() - t0)
    return out


def packed_and_alone(cfgs: list[Any]) -> tuple[float, float, list[int], float]:
    """Seconds for all trials packed by ``pack_key`` (c) and one after another with
    ``sd.train`` (b), measured pack by pack, alternating, so that drifts of a shared
    machine's speed hit both alike; the pack sizes; the peak CUDA memory per trial."""
    import torch

    from srsweep.kernels.sd.config import pack_key
    from srsweep.kernels.sd.packed import train_packed
    from srsweep.testing import RecordingRun

    groups: dict[Any, list[Any]] = {}
    for cfg in cfgs:
        groups.setdefault(pack_key(cfg), []).append(cfg)
    cuda = torch.cuda.is_available()
    t_c = t_b = peak = 0.0
    for group in groups.values():
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        outcome = train_packed(group, [RecordingRun() for _ in group])
        if cuda:
            torch.cuda.synchronize()
            peak = max(peak, (torch.cuda.max_memory_allocated() - base) / len(group))
        t_c += time.perf_counter() - t0
        failed = [str(e) for e in outcome if e is not None]
        if failed:
            print(f"  note: {len(failed)} packed trial(s) failed on their own: {failed[0]}")
        t_b += sum(in_process(group))
    return t_c, t_b, sorted((len(g) for g in groups.values()), reverse=True), peak


def memory_probe(n: int) -> None:
    """CUDA only: peak memory per trial of the seed's largest critic (8 x 512, lat 10)."""
    import torch

    from srsweep.config import build
    from srsweep.kernels.sd import SDConfig
    from srsweep.kernels.sd.packed import train_packed
    from srsweep.testing import RecordingRun

    over = {
        "device": "cuda",
        "epochs": 2,
        "log_freq": 1,
        "arch": {"lat_size": 10},
        "disc": {"hid_num": 8, "hid_size": 512, "iters": 10, "gp": 1e-5},
    }
    cfgs = [build(SDConfig, {**over, "seed": s}, "bench") for s in range(n)]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    train_packed(cfgs, [RecordingRun() for _ in cfgs])
    per = (torch.cuda.max_memory_allocated() - base) / n
    total = torch.cuda.get_device_properties(0).total_memory
    print(
        f"  8x512 critics (lat 10, iters 10, gp): {per / 2**20:.1f} MiB peak per trial in a "
        f"pack of {n}; {int(total * 0.95 // per)} fit in this GPU's {total / 2**30:.0f} GiB, "
        f"{int(80e9 * 0.95 // per)} in 80 GB (target >= 1000)"
    )


def main() -> None:
    _timing.main(
        run,
        doc=__doc__ or "",
        name="bench_pack",
        trials=64,
        budget=("epochs", 10, "fixed reduced epoch budget"),
        quick=(16, 4, 2),
    )


def run(args: argparse.Namespace) -> None:
    import torch

    from srsweep.config import build
    from srsweep.kernels.sd import SDConfig

    device = _timing.torch_setup()
    cuda = torch.cuda.is_available()
    trials = draw(args.trials, args.epochs)
    cfgs = [build(SDConfig, p, "bench") for p in trials]
    flops = sum(critic_flops(c) for c in cfgs)
    print(
        f"sd packing benchmark on {device}: {len(cfgs)} trials from {SPEC.name} (sweep seed "
        f"{SWEEP_SEED}), {args.epochs} epochs each; {_timing.threads_note()}"
    )
    in_process(cfgs[:1])  # warm up: data, library, allocator

    def measure() -> tuple[float, float, tuple[list[int], float]]:
        t_c, t_b, sizes, mem = packed_and_alone(cfgs)
        return t_b, t_c, (sizes, mem)

    best = _timing.at_best_threads(measure)
    t_b, t_c, (sizes, mem) = best.t_b, best.t_c, best.extra
    print(f"  packs: {len(sizes)}, sizes {sizes}")
    t_a_k, overhead = _timing.per_process_overhead(
        "sd", trials, lambda k: sum(in_process(cfgs[:k])), args.process_trials
    )
    _timing.print_rates(
        len(cfgs),
        t_a_k,
        overhead,
        best,
        target_a="100x" if cuda else "5x",
        target_b="-" if cuda else "2x",
        note_b=f", {flops / t_b / 1e9:.1f} GFLOP/s",
        note_c=f", {flops / t_c / 1e9:.1f} GFLOP/s",
    )
    if cuda:
        print(f"  peak CUDA memory per trial in these packs: {mem / 2**20:.1f} MiB")
        name = torch.cuda.get_device_name(0)
        peak = next((v for k_, v in PEAK_FP32.items() if k_ in name), None)
        if peak:
            print(
                f"  achieved {flops / t_c / peak:.2%} of {name}'s fp32 non-tensor peak "
                f"({peak / 1e12:.0f} TFLOP/s; critic matmul FLOPs only)"
            )
        memory_probe(16 if args.quick else 64)


if __name__ == "__main__":
    main()
