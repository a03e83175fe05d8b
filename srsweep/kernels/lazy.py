"""``lazy``: lazy training of an α-scaled ReLU MLP on a 1-D regression (seed 002).

The model α·(f_w(x) − f_w0(x)), f_w0 a frozen copy of the initial net, starts at zero and
is trained with plain SGD on the MSE at lr = lr0/α² (Chizat, Oyallon & Bach 2019). As α
grows the weights move less (∝ 1/α) while the loss still falls: the lazy regime. Logged
at step i: the loss of SGD step i (before its update, the notebook's ``losses[i]``) and
the relative weight movement after it; a weight-vector history is saved for the
loss-landscape analysis.

Follows the course notebook "TP3 Lazy training" and its ``tp3_utils`` helpers as
``../shared/reference/kernels.md`` section (b) describes them; seed
``../shared/seeds/002_fa2470e186f4fadc.txt``. Deviation: movement is measured from the
initial weights; the notebook's history (and so its reference point) starts after step 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from srsweep.config import param
from srsweep.errors import KernelFailed
from srsweep.kernels import lazy_pack
from srsweep.kernels._base import Kernel
from srsweep.kernels.common.nets import flatten_parameters
from srsweep.kernels.common.nets import resolve_device

if TYPE_CHECKING:
    from collections.abc import Callable

    from srsweep.kernels._base import Run

__all__ = ["LazyConfig", "MLP", "KERNEL", "train", "make_data", "make_model", "resolve_dtype"]

Array = npt.NDArray[np.float64]
F32_MAX_ALPHA = 1e3  # "auto" precision switches to float64 above this α
GRID_SIZE = 1000  # points of the saved final prediction

TARGETS: dict[str, Callable[[Array], Array]] = {
    "simple": lambda x: np.maximum(0.3 * x, 0),
    "middle": lambda x: np.abs(x + 0.5) - 2 * np.maximum(x - 0.5, 0) - 0.4,
    "complex": lambda x: np.sin(10 * x) * np.cos(2 * x + 1),
}


@dataclass(frozen=True)
class LazyConfig:
    """Config of the ``lazy`` kernel; defaults are the notebook's α study.

    Convention (they differ between codebases): the model is α·(f_w − f_w0), the loss is
    the plain MSE against y (not divided by α²), and SGD runs at lr = lr0/α².
    """

    seed: int = param(0, ge=0, help="seeds the data, the init and the batch order")
    n: int = param(10, ge=1, help="training points")
    x_min: float = param(-1.0, help="inputs are U(x_min, x_max)")
    x_max: float = param(1.0, help="inputs are U(x_min, x_max)")
    noise: float = param(0.0, ge=0, help="std of the Gaussian noise added to y")
    target: Literal["simple", "middle", "complex"] = param("middle", help="target function")
    model: Literal["shallow", "deep"] = param("deep", help="1-h-1, or 1-h-h-h-h-h-1; ReLU")
    width: int = param(8, ge=1, help="hidden width h")
    alpha: float = param(1.0, gt=0, help="output scale α")
    lr0: float = param(0.01, gt=0, help="SGD learning rate before the 1/α² factor")
    steps: int = param(10_000, ge=1, help="SGD steps")
    # None is the notebook's batch_size = n: plain full-batch gradient descent.
    batch_size: int | None = param(None, ge=1, help="minibatch size; null = n")
    log_every: int = param(10, ge=1, help="log every this many steps (and the last)")
    history_every: int = param(100, ge=0, help="weight snapshot every this many steps; 0 = off")
    # A deep width-1000 net has 4M weights (16 MB a snapshot): the stride is doubled until
    # the history fits, and the saved steps say which were kept.
    history_mb: float = param(256.0, gt=0, help="size cap of the saved weight history")
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


def resolve_dtype(cfg: LazyConfig) -> torch.dtype:
    """The working precision: ``cfg.dtype``, with "auto" = float64 iff α > 1e3."""
    if cfg.dtype == "auto":
        return torch.float64 if cfg.alpha > F32_MAX_ALPHA else torch.float32
    return getattr(torch, cfg.dtype)  # type: ignore[no-any-return]


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


def _batches(n: int, size: int, rng: np.random.RandomState) -> Callable[[], npt.NDArray[np.int64]]:
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


def _history_stride(cfg: LazyConfig, n_params: int) -> int:
    if not cfg.history_every:
        return 0
    stride = cfg.history_every
    while (cfg.steps // stride + 2) * n_params * 4 > cfg.history_mb * 2**20:
        stride *= 2
    return stride


def _check_losses(cfg: LazyConfig, losses: list[float], first: int) -> None:
    """Fail at the first non-finite loss; ``first`` is the step of ``losses[0]``."""
    for k, v in enumerate(losses, first):
        if not math.isfinite(v):
            lr = cfg.lr0 / cfg.alpha**2
            raise KernelFailed(
                f"non-finite loss at step {k} (lr0={cfg.lr0}, alpha={cfg.alpha}, lr={lr:.3g})"
            )


def train(cfg: LazyConfig, run: Run) -> None:
    """Train α·(f_w − f_w0) with SGD for ``cfg.steps`` steps (or until stopped), save it.

    Raises:
        KernelFailed: the loss became NaN/inf, or CUDA was requested but absent.
    """
    _train(cfg, run, resolve_device(cfg.device))


def _train(cfg: LazyConfig, run: Run, device: torch.device) -> None:
    dtype, alpha = resolve_dtype(cfg), cfg.alpha
    lr = cfg.lr0 / alpha**2
    net = make_model(cfg)
    init_state = {k: v.clone() for k, v in net.state_dict().items()}
    net = net.to(device=device, dtype=dtype)
    weights, grads = flatten_parameters(net)  # (P,): l1.weight, l1.bias, ..., lout.bias
    x_np, y_np, rng = make_data(cfg)
    grid_np = np.linspace(cfg.x_min, cfg.x_max, GRID_SIZE)

    def col(a: Array) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype).view(-1, 1).to(device)

    x, y, grid = col(x_np), col(y_np), col(grid_np)
    with torch.no_grad():  # the frozen f_w0 never changes: evaluate it once
        base, base_grid = net(x), net(grid)
        flat0 = weights.clone()
        last0, lastw0 = net.lout.bias.clone(), net.lout.weight.clone()
    full = cfg.batch_size is None or cfg.batch_size == cfg.n
    next_batch = _batches(cfg.n, cfg.batch_size or cfg.n, rng)
    stride = _history_stride(cfg, flat0.numel())
    history: list[torch.Tensor] = []
    history_steps: list[int] = []
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # per-step losses not yet read back

    def snapshot(step: int) -> None:
        history.append(weights.to(torch.float32, copy=True))
        history_steps.append(step)

    def rel(a: torch.Tensor, a0: torch.Tensor) -> torch.Tensor:
        move: torch.Tensor = torch.linalg.vector_norm(a - a0) / torch.linalg.vector_norm(a0)
        return move

    for step in range(cfg.steps):
        if full:
            xb, yb, bb = x, y, base
        else:
            idx = torch.as_tensor(next_batch(), device=device)
            xb, yb, bb = x[idx], y[idx], base[idx]
        loss = F.mse_loss(alpha * (net(xb) - bb), yb)
        grads.zero_()
        loss.backward()  # type: ignore[no-untyped-call]
        with torch.no_grad():
            weights.sub_(grads, alpha=lr)  # plain SGD, no momentum (the notebook's)
        pending.append(loss.detach())
        last = step == cfg.steps - 1
        if stride and (step % stride == 0 or last):
            snapshot(step)
        if step % cfg.log_every and not last:
            continue
        with torch.no_grad():  # one host sync per log
            # The notebook's "last layer" is list(parameters())[-1]: lout.bias, one number.
            moves = torch.stack(
                [rel(net.lout.bias, last0), rel(net.lout.weight, lastw0), rel(weights, flat0)]
            )
            vals = torch.cat([torch.stack(pending), moves]).tolist()
        pending.clear()
        new, (m_last, m_weight, m_all) = vals[:-3], vals[-3:]
        _check_losses(cfg, new, step - len(new) + 1)
        losses += new
        run.log(
            {
                "loss": new[-1],
                "rel_move_last": m_last,
                "rel_move_last_weight": m_weight,
                "rel_move_all": m_all,
            },
            step=step,
        )
        if run.should_stop():
            if stride and history_steps[-1] != step:
                snapshot(step)
            break
    with torch.no_grad():
        pred = alpha * (net(grid) - base_grid)
    n_params = flat0.numel()
    run.save(
        {
            "init_state": init_state,
            "final_state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "param_shapes": [(name, tuple(p.shape)) for name, p in net.named_parameters()],
            "history": (
                torch.stack(history).cpu().numpy()
                if history
                else np.zeros((0, n_params), np.float32)
            ),
            "history_steps": np.array(history_steps, dtype=np.int64),
            "weights0": flat0.float().cpu().numpy(),
            "losses": np.array(losses, dtype=np.float32),
            "x": x_np,
            "y": y_np,
            "grid": grid_np,
            "pred": pred.squeeze(1).cpu().numpy(),
            "alpha": alpha,
            "lr": lr,
            "dtype": str(dtype).removeprefix("torch."),
        }
    )


KERNEL = Kernel(
    name="lazy",
    config=LazyConfig,
    train=train,
    metric="loss",
    goal="minimize",
    curve="loss",
    summary="lazy training: alpha-scaled ReLU MLP alpha*(f - f0) with SGD at lr0/alpha^2 "
    "(seed 002)",
    pack_key=lazy_pack.pack_key,
    train_packed=lazy_pack.train_packed,
)
