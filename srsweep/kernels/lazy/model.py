"""What ``lazy``'s solo and packed paths share (seed 002): the notebook's MLPs and
data, the precision rule, the batch order, the snapshot stride and the non-finite check,
so that a packed trial draws, trains and fails exactly as the same trial alone.

The notebook "TP3 Lazy training" and its ``tp3_utils`` helpers, as
``../shared/reference/kernels.md`` section (b) describes them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from srsweep.errors import KernelFailed
from srsweep.kernels.lazy.config import dtype_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from srsweep.kernels.lazy.config import LazyConfig

__all__ = [
    "GRID_SIZE",
    "MLP",
    "TARGETS",
    "batches",
    "check_losses",
    "history_stride",
    "make_data",
    "make_model",
    "resolve_dtype",
]

Array = npt.NDArray[np.float64]
GRID_SIZE = 1000  # points of the saved final prediction

TARGETS: dict[str, Callable[[Array], Array]] = {
    "simple": lambda x: np.maximum(0.3 * x, 0),
    "middle": lambda x: np.abs(x + 0.5) - 2 * np.maximum(x - 0.5, 0) - 0.4,
    "complex": lambda x: np.sin(10 * x) * np.cos(2 * x + 1),
}


def resolve_dtype(cfg: LazyConfig) -> torch.dtype:
    """The working precision: ``cfg.dtype``, with "auto" = float64 iff α > 1e3."""
    dtype: torch.dtype = getattr(torch, dtype_name(cfg))
    return dtype


class MLP(nn.Module):
    """The notebook's ``MLPshallow``/``MLPdeep``: ``l1`` (1 -> h), ``l2``.. (h -> h),
    ``lout`` (h -> 1), ReLU between; the names keep the notebook's state-dict keys."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(1, width)
        for k in range(2, hidden + 1):
            setattr(self, f"l{k}", nn.Linear(width, width))
        self.lout = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1) -> (B, 1)
        *body, out = self.children()
        for layer in body:
            x = torch.relu(layer(x))
        return out(x)  # type: ignore[no-any-return]


def make_model(cfg: LazyConfig) -> MLP:
    """The initial network, PyTorch's default init drawn from ``cfg.seed`` (global RNG
    untouched; built in float32 on CPU, so every dtype and device starts the same)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return MLP(cfg.width, 1 if cfg.model == "shallow" else 5)


def make_data(cfg: LazyConfig) -> tuple[Array, Array, np.random.RandomState]:
    """The notebook's ``Data``: x_i ~ U(x_min, x_max), y_i = f(x_i) + noise·N(0, 1).

    Returns:
        ``(x [n], y [n], rng)``; the rng, seeded with ``cfg.seed``, drew x and the noise
        (interleaved per point, as the notebook, even when noise = 0) and goes on to
        shuffle the batches.
    """
    rng = np.random.RandomState(cfg.seed)
    draws = np.array([(rng.rand(), rng.normal()) for _ in range(cfg.n)])  # (n, 2)
    x = cfg.x_min + draws[:, 0] * (cfg.x_max - cfg.x_min)
    return x, TARGETS[cfg.target](x) + cfg.noise * draws[:, 1], rng


def batches(n: int, size: int, rng: np.random.RandomState) -> Callable[[], npt.NDArray[np.int64]]:
    """The notebook's ``next_batch``: walk a pass order; the batch that runs past the
    end is cut short and triggers a reshuffle, and the position wraps modulo n."""
    order, pos = np.arange(n), 0

    def next_batch() -> npt.NDArray[np.int64]:
        nonlocal pos
        idx = order[pos : pos + size].copy()
        if pos + size > n:
            rng.shuffle(order)
        pos = (pos + size) % n
        return idx

    return next_batch


def history_stride(cfg: LazyConfig, n_params: int) -> int:
    """Steps between weight snapshots: ``history_every``, doubled until the history of
    ``n_params`` float32 weights fits in ``history_mb``; 0 = no history."""
    if not cfg.history_every:
        return 0
    stride = cfg.history_every
    while (cfg.steps // stride + 2) * n_params * 4 > cfg.history_mb * 2**20:
        stride *= 2
    return stride


def check_losses(cfg: LazyConfig, losses: list[float], first: int) -> None:
    """Fail at the first non-finite loss; ``first`` is the step of ``losses[0]``."""
    for k, v in enumerate(losses, first):
        if not math.isfinite(v):
            lr = cfg.lr0 / cfg.alpha**2
            raise KernelFailed(
                f"non-finite loss at step {k} (lr0={cfg.lr0}, alpha={cfg.alpha}, lr={lr:.3g})"
            )
