"""The toy kernel trained alone: gradient steps on ``(w - target)^2`` for a scalar ``w``."""

from __future__ import annotations

import math
import time

from srsweep.errors import KernelFailed
from srsweep.kernels import Run
from srsweep.testing.toy.config import ToyConfig

__all__ = ["train"]


def train(cfg: ToyConfig, run: Run) -> None:
    """Train one toy trial: log ``loss`` and ``w`` each step, save ``{"w": w}``.

    Raises:
        RuntimeError: at step ``fail_at``.
        KernelFailed: at step ``nan_at``, whose loss is NaN.
    """
    w = cfg.w0 + 0.01 * cfg.seed
    for step in range(cfg.steps):
        if cfg.fail_at == step:
            raise RuntimeError(f"toy failure at step {step}")
        loss = (w - cfg.target) ** 2 if cfg.nan_at != step else math.nan
        if not math.isfinite(loss):
            raise KernelFailed(f"non-finite loss at step {step}")
        run.log({"loss": loss, "w": w}, step=step)
        if run.should_stop():
            break
        w -= cfg.opt.lr * 2 * (w - cfg.target)
        if cfg.sleep:
            time.sleep(cfg.sleep)
    run.save({"w": w})
