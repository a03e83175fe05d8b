"""The ``lazy`` kernel's config and pack key (no torch: ``create``, ``kernels`` and
``status`` read them without training)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from srsweep.config import MAX_SEED
from srsweep.config import param
from srsweep.kernels.common import bounds

__all__ = ["F32_MAX_ALPHA", "LazyConfig", "dtype_name", "pack_key"]

F32_MAX_ALPHA = 1e3  # "auto" precision switches to float64 above this α


@dataclass(frozen=True)
class LazyConfig:
    """Config of the ``lazy`` kernel; defaults are the notebook's α study.

    Convention (they differ between codebases): the model is α·(f_w − f_w0), the loss is
    the plain MSE against y (not divided by α²), and SGD runs at lr = lr0/α².
    """

    seed: int = param(0, ge=0, le=MAX_SEED, help="seeds the data, the init and the batch order")
    n: int = param(10, ge=1, le=1_000_000, help="training points")
    x_min: float = param(-1.0, help="inputs are U(x_min, x_max)")
    x_max: float = param(1.0, help="inputs are U(x_min, x_max)")
    noise: float = param(0.0, ge=0, help="std of the Gaussian noise added to y")
    target: Literal["simple", "middle", "complex"] = param("middle", help="target function")
    model: Literal["shallow", "deep"] = param("deep", help="1-h-1, or 1-h-h-h-h-h-1; ReLU")
    width: int = param(8, ge=1, le=bounds.MAX_WIDTH, help="hidden width h")
    # The notebook's α reaches 1e3 (float64 from there); at 1e6 float64 keeps α(f − f0)
    # to about 1e-10, and lr = lr0/α² lets lr0 reach 1e13 for an SGD rate of 10.
    alpha: float = param(1.0, gt=0, le=1e6, help="output scale α")
    lr0: float = param(0.01, gt=0, le=1e13, help="SGD learning rate before the 1/α² factor")
    steps: int = param(10_000, ge=1, le=bounds.MAX_EPOCHS, help="SGD steps")
    # None is the notebook's batch_size = n: plain full-batch gradient descent.
    batch_size: int | None = param(None, ge=1, le=1_000_000, help="minibatch size; null = n")
    log_every: int = param(
        10, ge=1, le=bounds.MAX_EPOCHS, help="log every this many steps (and the last)"
    )
    history_every: int = param(
        100, ge=0, le=bounds.MAX_EPOCHS, help="weight snapshot every this many steps; 0 = off"
    )
    # A deep width-1000 net has 4M weights (16 MB a snapshot): the stride is doubled until
    # the history fits, and the saved steps say which were kept.
    history_mb: float = param(256.0, gt=0, le=1e5, help="size cap of the saved weight history")
    # α(f_w − f_w0) subtracts two nearly equal numbers and multiplies the difference by
    # α, so float32's 1e-7 relative error becomes ~α·1e-7 in the output.
    dtype: Literal["float32", "float64", "auto"] = param("auto", help="auto: f64 iff alpha > 1e3")
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")

    def violations(self) -> list[str]:
        """Cross-field rules, one message per broken rule."""
        out, lo, hi, bs = [], self.x_min, self.x_max, self.batch_size
        if not lo < hi:
            out.append(f"x_min, x_max: x_min < x_max must hold, but got (x_min={lo}, x_max={hi})")
        if bs is not None and bs > self.n:
            out.append(f"batch_size: must be <= n = {self.n}, but got {bs}")
        return out


def dtype_name(cfg: LazyConfig) -> str:
    """The working precision's name: ``cfg.dtype``, with "auto" = "float64" iff α > 1e3."""
    if cfg.dtype == "auto":
        return "float64" if cfg.alpha > F32_MAX_ALPHA else "float32"
    return cfg.dtype


def pack_key(cfg: LazyConfig) -> tuple[Hashable, ...]:
    """Trials with equal keys can train in one pack: same net shape, data size, batch
    size, step schedule, working precision and device."""
    data = (cfg.n, cfg.batch_size or cfg.n)  # null and n are both full-batch GD
    schedule = (cfg.steps, cfg.log_every)
    return ("lazy", cfg.model, cfg.width, data, schedule, dtype_name(cfg), cfg.device)
