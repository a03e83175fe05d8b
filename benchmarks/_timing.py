"""Shared by the packing benchmarks: one trial per process, as a plain agent runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
