"""The toy kernel's config and pack key (no torch, like every kernel's ``config.py``)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from srsweep.config import MAX_SEED
from srsweep.config import param

__all__ = ["Opt", "ToyConfig", "pack_key"]


@dataclass
class Opt:
    lr: float = param(0.1, gt=0, le=10)  # steps on (w - target)^2 diverge above 1
    momentum: float = param(0.0, ge=0, le=1)  # unused: a second key in a section


@dataclass
class ToyConfig:
    seed: int = param(0, ge=0, le=MAX_SEED)
    steps: int = param(5, ge=1, le=1_000_000)
    target: float = 1.0
    w0: float = 0.0
    opt: Opt = param(factory=Opt)
    flag: bool = False
    fail_at: int | None = None  # raise RuntimeError at this step
    nan_at: int | None = None  # the loss turns NaN at this step
    sleep: float = param(0.0, ge=0, le=60)  # seconds per step, for signal tests


def pack_key(cfg: ToyConfig) -> Hashable:
    """Trials with the same number of steps share a pack."""
    return cfg.steps
