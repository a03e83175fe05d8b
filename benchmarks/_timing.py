"""Shared by the packing benchmarks: one trial per process, as a plain agent runs it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import Generic
from typing import NamedTuple
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent


def run_processes(kernel: str, trials: list[dict[str, Any]], results: Path) -> list[float]:
    """Wall seconds per trial, each run as its own ``srsweep run KERNEL ARGS_JSON``
    process (W&B disabled), one after another; the process start, imports, ledger and
    model file are included, as they are for ``wandb agent`` or a one-trial agent.

    Raises:
        RuntimeError: a trial's process failed (with the tail of its output).
    """
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out = []
    for params in trials:
        cmd = [sys.executable, "-m", "srsweep.cli", "--results", str(results), "run", kernel]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, json.dumps(params)], env=env, cwd=ROOT, capture_output=True, text=True
        )
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise RuntimeError(
                f"`srsweep run {kernel}` exited {proc.returncode}: " + " | ".join(tail)
            )
    return out


def main(
    run: Callable[[argparse.Namespace], None],
    *,
    doc: str,
    name: str,
    trials: int,
    budget: tuple[str, int, str],
    quick: tuple[int, int, int],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The packing benchmarks' command line: ``--trials``, a budget flag (``budget`` =
    flag, default, help), ``--process-trials``, ``--quick`` (``quick`` = trials, budget,
    process trials); then ``run(args)``, exiting non-zero with the error if it breaks."""
    flag, default, help_ = budget
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=trials, help="trials drawn from the study")
    ap.add_argument(f"--{flag}", type=int, default=default, help=help_)
    ap.add_argument(
        "--process-trials",
        type=int,
        default=4,
        help="how many of them (a) runs as processes (the rest is extrapolated)",
    )
    if extra is not None:
        extra(ap)
    ap.add_argument(
        "--quick", action="store_true", help=f"{quick[0]} trials x {quick[1]} {flag} (CI smoke)"
    )
    args = ap.parse_args()
    if args.quick:
        args.trials, args.process_trials = quick[0], quick[2]
        setattr(args, flag, quick[1])
    try:
        run(args)
    except Exception as e:  # a benchmark that breaks says where, then fails
        traceback.print_exc()
        sys.exit(f"{name}: failed: {type(e).__name__}: {e}")


def torch_setup() -> str:
    """Threads as the agent sets them (``SRSWEEP_THREADS``, default 1); the device name."""
    import torch

    torch.set_num_threads(int(os.environ.get("SRSWEEP_THREADS", "1")))
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores"


def thread_counts() -> list[int]:
    """Torch thread counts to time each way at: ``SRSWEEP_THREADS`` if set, the current
    count on CUDA, else one thread and every core (a packed batch may use the cores a
    single small trial cannot)."""
    import torch

    if "SRSWEEP_THREADS" in os.environ or torch.cuda.is_available():
        return [torch.get_num_threads()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return sorted({1, cores or 1})


X = TypeVar("X")


class Best(NamedTuple, Generic[X]):
    """(b) and (c) each at its faster thread count; ``extra`` from (c)'s run."""

    t_b: float
    threads_b: int
    t_c: float
    threads_c: int
    extra: X


def at_best_threads(measure: Callable[[], tuple[float, float, X]]) -> Best[X]:
    """``measure()`` -> ``(t_b, t_c, extra)`` at each of ``thread_counts()``, a line per
    count when there are several; then torch (and ``SRSWEEP_THREADS``, for (a)'s
    processes) set to (b)'s faster count, as (a) is measured as (b) plus start-up."""
    import torch

    counts = thread_counts()
    runs = {}
    for threads in counts:
        torch.set_num_threads(threads)
        runs[threads] = measure()
        if len(counts) > 1:
            t_b, t_c, _ = runs[threads]
            print(
                f"  {threads} thread(s): (b) {t_b:.1f} s, (c) {t_c:.1f} s, "
                f"packed / (b) = {t_b / t_c:.1f}x"
            )
    th_b = min(runs, key=lambda k: runs[k][0])
    th_c = min(runs, key=lambda k: runs[k][1])
    torch.set_num_threads(th_b)
    os.environ["SRSWEEP_THREADS"] = str(th_b)
    return Best(runs[th_b][0], th_b, runs[th_c][1], th_c, runs[th_c][2])


def threads_note() -> str:
    """The thread counts ``at_best_threads`` will time, for a benchmark's header."""
    return "torch threads " + " and ".join(map(str, thread_counts()))


def per_process_overhead(
    kernel: str,
    trials: list[dict[str, Any]],
    alone: Callable[[int], float],
    k: int,
) -> tuple[list[float], float]:
    """(a)'s measurement: the first ``k`` trials as processes, and the per-trial cost of a
    process beyond training (start, imports, ledger, model file) = their wall time minus
    ``alone(k)``, the same trials' in-process seconds."""
    k = max(1, min(k, len(trials)))
    with tempfile.TemporaryDirectory(prefix=f"bench_{kernel}_") as tmp:
        t_a_k = run_processes(kernel, trials[:k], Path(tmp) / "results")
    return t_a_k, (sum(t_a_k) - alone(k)) / k


def print_rates(
    n: int,
    t_a_k: list[float],
    overhead: float,
    best: Best[Any],
    *,
    target_a: str,
    target_b: str = "",
    note_b: str = "",
    note_c: str = "",
) -> None:
    """Trials/hour for (a) one per process (extrapolated as (b) plus ``overhead`` per
    trial), (b) one after another in-process and (c) packed, each at its thread count in
    ``best``, and the ratios."""
    t_b, t_c = best.t_b, best.t_c
    note_b += f", {best.threads_b} thread(s)"
    note_c += f", {best.threads_c} thread(s)"
    t_a = t_b + overhead * n
    k = len(t_a_k)

    def rate(seconds: float) -> float:
        return n * 3600 / seconds

    print(
        f"  (a) one trial per process: {rate(t_a):9.0f} trials/h  (measured on {k} trials:"
        f" {k * 3600 / sum(t_a_k):.0f} trials/h; extrapolated as (b) + {overhead:.2f} s"
        f" per-process overhead per trial)"
    )
    print(f"  (b) one after another:     {rate(t_b):9.0f} trials/h  ({t_b:.1f} s{note_b})")
    print(f"  (c) packed:                {rate(t_c):9.0f} trials/h  ({t_c:.1f} s{note_c})")
    tb = f" (target >= {target_b})" if target_b else ""
    print(
        f"  packed / (a) = {t_a / t_c:.1f}x (target >= {target_a}),"
        f"  packed / (b) = {t_b / t_c:.1f}x{tb}"
    )
    print(f"  agent overhead estimate: {overhead:.2f} s per trial as its own process")
