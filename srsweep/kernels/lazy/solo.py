"""``lazy``'s solo path: one α-scaled ReLU MLP α·(f_w − f_w0) trained with plain SGD
at lr0/α² (seed 002).

Logged at step i: the loss of SGD step i (before its update, the notebook's
``losses[i]``) and the relative weight movement after it; a weight-vector history is
saved for the loss-landscape analysis (``srsweep.kernels.lazy.landscape``). The package
docstring (``srsweep.kernels.lazy``) cites the study and the reference this follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from srsweep.kernels.common.nets import flatten_parameters
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.saved import to_numpy
from srsweep.kernels.lazy.model import GRID_SIZE
from srsweep.kernels.lazy.model import batches
from srsweep.kernels.lazy.model import check_losses
from srsweep.kernels.lazy.model import history_stride
from srsweep.kernels.lazy.model import make_data
from srsweep.kernels.lazy.model import make_model
from srsweep.kernels.lazy.model import resolve_dtype

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.lazy.config import LazyConfig
    from srsweep.kernels.lazy.model import Array

__all__ = ["train"]


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
    next_batch = batches(cfg.n, cfg.batch_size or cfg.n, rng)
    stride = history_stride(cfg, flat0.numel())
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
        check_losses(cfg, new, step - len(new) + 1)
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
        to_numpy(
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
    )
