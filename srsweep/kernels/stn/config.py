"""The ``stn`` kernel's config and pack key (no torch: ``create``, ``kernels`` and
``status`` read them without training)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from srsweep.config import MAX_SEED
from srsweep.config import param
from srsweep.kernels.common import bounds

__all__ = ["STNConfig", "pack_key"]


@dataclass(frozen=True)
class STNConfig:
    """Config of the ``stn`` kernel; defaults are the port's ``ExperimentConfig`` and
    its notebook constants."""

    seed: int = param(
        42, ge=0, le=MAX_SEED, help="seeds the init and every draw (ExperimentConfig: 42)"
    )
    # 2^(-2L) is below float64's resolution long before L = 32
    L: int = param(2, ge=0, le=32, help="L + 1 hidden ReLU layers; sup error bound 2^(-2L)")
    M: int = param(2, ge=1, le=bounds.MAX_WIDTH, help="hidden width is M + d + 1 with d = 1")
    batch_size: int = param(100, ge=1, le=1_000_000, help="samples per weight and per hyper step")
    init_x_range: float = param(1.0, gt=0, help="initial half-width t of the training range")
    x_min: float = param(0.01, gt=0, help="lower end of t's interval")
    x_max: float = param(10.0, gt=0, help="upper end of t's interval")
    init_scale: float = param(0.5, gt=0, help="initial perturbation scale softplus(s)")
    train_lr: float = param(
        0.01, gt=0, le=bounds.MAX_LR, help="Adam lr of the weights (W, HW, b, hb, gates)"
    )
    hyper_lr: float = param(
        0.003, gt=0, le=bounds.MAX_LR, help="Adam lr of the unconstrained x_range"
    )
    scale_lr: float = param(0.003, gt=0, le=bounds.MAX_LR, help="Adam lr of the perturbation scale")
    entropy_weight: float = param(0.001, ge=0, le=1e6, help="weight of the Gaussian entropy bonus")
    warmup_steps: int = param(
        5, ge=0, le=bounds.MAX_EPOCHS, help="weight steps before the first cycle (steps)"
    )
    train_steps: int = param(2, ge=1, le=1_000_000, help="weight steps per cycle")
    hyper_steps: int = param(2, ge=0, le=1_000_000, help="hyper steps per cycle; 0 = fixed x_range")
    eval_range: float = param(2.0, gt=0, help="dist is measured on [-eval_range, eval_range]")
    eval_size: int = param(100, ge=2, le=1_000_000, help="grid points of the dist measurement")
    val_range: float = param(2.0, gt=0, help="hyper-step inputs are U(-val_range, val_range)")
    max_cycles: int = param(
        2000, ge=1, le=bounds.MAX_EPOCHS, help="cycles (train_steps + hyper_steps) at most"
    )
    dist_threshold: float = param(0.05, ge=0, help="stop once dist < this")
    # Keras' Adam default; torch's is 1e-8. It matters only for tiny gradients.
    adam_eps: float = param(1e-7, gt=0, le=1, help="Adam epsilon of all three optimisers")
    gate: Literal["layer", "unit"] = param("layer", help="gates per layer (port) or per unit")
    log_every: int = param(
        1, ge=1, le=bounds.MAX_EPOCHS, help="log every this many cycles (and the last)"
    )
    # The port runs in float64 throughout; float32 is there for speed experiments.
    dtype: Literal["float64", "float32"] = param("float64", help="tensor precision")
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")

    def violations(self) -> list[str]:
        """Cross-field rules, one message per broken rule."""
        lo, hi, t = self.x_min, self.x_max, self.init_x_range
        if not lo < hi:
            return [f"x_min, x_max: x_min < x_max must hold, but got (x_min={lo}, x_max={hi})"]
        if not lo < t < hi:  # the logit of an end point is infinite
            return [f"init_x_range: must lie inside (x_min, x_max) = ({lo}, {hi}), but got {t}"]
        return []


def pack_key(cfg: STNConfig) -> tuple[Hashable, ...]:
    """Trials with equal keys can train in one pack: same net, batch and eval shapes,
    same step schedule, precision and device."""
    net = (cfg.L, cfg.M, cfg.gate)
    schedule = (cfg.batch_size, cfg.eval_size, cfg.warmup_steps, cfg.train_steps, cfg.hyper_steps)
    return ("stn", net, schedule, cfg.dtype, cfg.device)
