"""``lazy``'s packed path: many α-scaled MLPs of one shape trained as one stacked model,
each trial still logged, stopped, failed and saved as its own run (seed 002).

Each trial's weights are one row of a ``[T, P]`` tensor in the solo ``train``'s flat layout
(l1.weight, l1.bias, ..., lout.bias); a layer is a strided view of it and runs as one
``baddbmm`` for all trials. Forward and backward are written out: for a ReLU MLP under an
MSE that is a dozen batched matmuls a step, and with matrices this small a step costs its
launches and Python calls, which autograd would only add to (``../shared/reference/
kernels.md`` section 4 measured stacked ``baddbmm`` with manual SGD at 56x a loop of
modules, 64 trials on 2 cores). Each layer's SGD update, at every trial's own lr =
lr0/α², is applied in place on those views as soon as its gradient is known.

Per trial may differ: seed, α, lr0, target, noise, x range and the weight-history
settings. A trial draws its init, data and batch order from its own seed exactly as
the solo ``train`` does, and its frozen f_w0 is its own initial net; what shapes the stack or
the schedule (model, width, n, batch size, steps, log_every, precision, device) is in
``pack_key``. No reduction crosses trials: a trial whose loss turns NaN/inf keeps the NaNs
in its own row and fails alone, at the log step where the solo ``train`` raises and with its
message. A trial that stops or fails leaves the pack, which is re-stacked without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import torch

from srsweep.kernels._base import check_pack
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.saved import to_numpy
from srsweep.kernels.lazy.config import pack_key
from srsweep.kernels.lazy.model import GRID_SIZE
from srsweep.kernels.lazy.model import batches
from srsweep.kernels.lazy.model import check_losses
from srsweep.kernels.lazy.model import history_stride
from srsweep.kernels.lazy.model import make_data
from srsweep.kernels.lazy.model import make_model
from srsweep.kernels.lazy.model import resolve_dtype

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from srsweep.kernels._base import Run
    from srsweep.kernels.lazy.config import LazyConfig

__all__ = ["train_packed"]

Layers = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # W, W^T [T, in, out], b


def _layout(width: int, hidden: int) -> list[tuple[str, int, int, int]]:
    """``(name, offset, out, in)`` of each Linear in the flat vector, in module order."""
    sizes = [1] + [width] * hidden + [1]
    names = [f"l{k}" for k in range(1, hidden + 1)] + ["lout"]
    out, at = [], 0
    for name, i, o in zip(names, sizes, sizes[1:], strict=False):
        out.append((name, at, o, i))
        at += o * i + o
    return out


def _forward(layers: Layers, x: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The MLPs on ``x [T, B, 1]`` -> ``[T, B, 1]``; ``inputs`` gets each layer's input."""
    h = x
    for k, (_, wt, b) in enumerate(layers):
        inputs.append(h)
        h = torch.baddbmm(b, h, wt)  # (T, B, out)
        if k < len(layers) - 1:
            h = h.relu()
    return h


class _Pack:
    """The trials still training: stacked weights and initial weights, the data (x, −y
    and f_w0(x) per point) and per-trial constants. Row r is trial ``ids[r]``."""

    def __init__(self, cfgs: list[LazyConfig], device: torch.device) -> None:
        c0 = cfgs[0]
        self.dtype, self.device = resolve_dtype(c0), device
        self.layout = _layout(c0.width, 1 if c0.model == "shallow" else 5)
        self.batch = c0.batch_size or c0.n
        self.ids = list(range(len(cfgs)))
        self.init_states: list[dict[str, torch.Tensor]] = []
        self.xs: list[npt.NDArray[np.float64]] = []
        self.ys: list[npt.NDArray[np.float64]] = []
        self.next_batch: list[Callable[[], npt.NDArray[np.int64]]] = []
        inits: dict[int, dict[str, torch.Tensor]] = {}  # studies repeat a seed across α
        for c in cfgs:
            if c.seed not in inits:
                inits[c.seed] = {k: v.clone() for k, v in make_model(c).state_dict().items()}
            self.init_states.append(inits[c.seed])
            xs, ys, rng = make_data(c)  # the rng goes on to shuffle this trial's batches
            self.xs.append(xs)
            self.ys.append(ys)
            self.next_batch.append(batches(c.n, self.batch, rng))
        flat = [torch.cat([v.reshape(-1) for v in s.values()]) for s in self.init_states]
        self.flat0 = torch.stack(flat).to(device=device, dtype=self.dtype)  # (T, P)
        self.weights = self.flat0.clone()
        xy = torch.as_tensor(np.stack([self.xs, self.ys], 2), dtype=self.dtype).to(device)
        x = xy[..., :1].contiguous()  # (T, n, 1)
        base = _forward(self.layers(self.flat0), x, [])  # the frozen f_w0 on the data, once
        self.xyb = torch.cat([x, -xy[..., 1:], base], 2)  # (T, n, 3)
        self.alpha = self._col([c.alpha for c in cfgs])  # (T, 1, 1)
        self.lr = self._col([c.lr0 / c.alpha**2 for c in cfgs])  # (T, 1, 1)
        self._restack()

    def _col(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device).view(-1, 1, 1)

    def layers(self, flat: torch.Tensor) -> Layers:
        """Per-layer views of ``flat [T, P]``: ``W [T, out, in]``, ``W^T`` and
        ``b [T, 1, out]``."""
        T, out = len(flat), []
        for _, at, o, i in self.layout:
            w = flat[:, at : at + o * i].view(T, o, i)
            out.append((w, w.mT, flat[:, at + o * i : at + o * i + o].unsqueeze(1)))
        return out

    def _restack(self) -> None:
        """What derives from the rows, made once per stack rather than once per step."""
        self.stack = self.layers(self.weights)
        self.full = tuple(self.xyb[..., k : k + 1].contiguous() for k in range(3))
        self.coefs = {self.batch: 2 * self.alpha / self.batch}  # d mean(r²) / d out = 2α r / B
        P = self.weights.shape[1]
        self.lout_w = slice(P - 1 - self.layout[-1][3], P - 1)
        self.norm0 = self._norms(self.flat0)

    def _norms(self, flat: torch.Tensor) -> torch.Tensor:
        """``[3, T]`` norms of lout.bias (the notebook's "last layer"), lout.weight, all."""
        norm = torch.linalg.vector_norm
        last = flat[:, -1].abs()
        return torch.stack([last, norm(flat[:, self.lout_w], dim=1), norm(flat, dim=1)])

    def step(self) -> torch.Tensor:
        """One SGD step of every trial on its next batch; returns the losses ``[T]`` of
        the weights before the update (the notebook's ``losses[i]``)."""
        if self.batch < self.xyb.shape[1]:
            idx = np.stack([nb() for nb in self.next_batch])  # (T, B): each its own order
            at = torch.as_tensor(idx, device=self.device).unsqueeze(2).expand(-1, -1, 3)
            xyb = torch.gather(self.xyb, 1, at)
            x, neg_y, base = xyb[..., :1], xyb[..., 1:2], xyb[..., 2:]
            B = idx.shape[1]  # the batch that runs past the end is cut short
            if B not in self.coefs:
                self.coefs[B] = 2 * self.alpha / B
        else:
            (x, neg_y, base), B = self.full, self.batch
        inputs: list[torch.Tensor] = []
        out = _forward(self.stack, x, inputs)
        r = torch.addcmul(neg_y, self.alpha, out - base)  # α(f_w − f_w0) − y: (T, B, 1)
        loss = (r * r).mean((1, 2))
        g = r * self.coefs[B]  # d loss / d out, per trial
        for k in range(len(self.stack) - 1, -1, -1):
            w, _, b = self.stack[k]
            dw, db = torch.bmm(g.mT, inputs[k]), g.sum(1, keepdim=True)  # like w, like b
            if k:  # back through W (before its update), then ReLU's derivative (0 at 0)
                g = torch.ops.aten.threshold_backward(torch.bmm(g, w), inputs[k], 0)
            # Plain SGD at each trial's lr, layer by layer. One update of the flat vector
            # would need a (T, P) gradient: bmm writing into strided views of one ran a
            # loop per trial, and a cat of the pieces cost more than these updates.
            w.addcmul_(dw, self.lr, value=-1)
            b.addcmul_(db, self.lr, value=-1)
        return loss

    def moves(self) -> torch.Tensor:
        """``[3, T]`` movements relative to the initial weights, as the solo ``train`` logs."""
        return self._norms(self.weights - self.flat0) / self.norm0

    def keep(self, rows: list[int]) -> None:
        """Re-stack with only ``rows`` (trials that left no longer cost compute)."""
        idx = torch.as_tensor(rows, device=self.device)
        self.ids = [self.ids[r] for r in rows]
        self.next_batch = [self.next_batch[r] for r in rows]
        for name in ("weights", "flat0", "xyb", "alpha", "lr"):
            setattr(self, name, getattr(self, name).index_select(0, idx))
        self._restack()

    def predict(self, rows: list[int], grids: list[npt.NDArray[np.float64]]) -> torch.Tensor:
        """α(f_w − f_w0) of ``rows`` on their grids: ``[len(rows), G]``."""
        idx = torch.as_tensor(rows, device=self.device)
        g = torch.as_tensor(np.stack(grids), dtype=self.dtype).to(self.device).unsqueeze(2)
        now = _forward(self.layers(self.weights.index_select(0, idx)), g, [])
        then = _forward(self.layers(self.flat0.index_select(0, idx)), g, [])
        return (self.alpha.index_select(0, idx) * (now - then)).squeeze(2)

    def state(self, row: int) -> dict[str, torch.Tensor]:
        """Row's weights in ``make_model(cfg).state_dict()``'s layout (CPU copies)."""
        w = self.weights[row]
        out = {}
        for name, at, o, i in self.layout:
            out[f"{name}.weight"] = w[at : at + o * i].view(o, i).cpu().clone()
            out[f"{name}.bias"] = w[at + o * i : at + o * i + o].cpu().clone()
        return out


@dataclass
class _Trial:
    """What one trial collects on the host until it is saved."""

    cfg: LazyConfig
    run: Run
    stride: int  # weight snapshot every this many steps; 0 = off
    losses: list[float] = field(default_factory=list)
    history: list[torch.Tensor] = field(default_factory=list)  # float32 rows (P,)
    history_steps: list[int] = field(default_factory=list)

    def snapshot(self, weights: torch.Tensor, step: int) -> None:
        self.history.append(weights)
        self.history_steps.append(step)


def train_packed(cfgs: list[LazyConfig], runs: list[Run]) -> list[BaseException | None]:
    """Train ``cfgs`` as one stacked model, each trial logging and saving to its ``run``.

    Each trial logs the solo ``train``'s metrics at its steps and saves its state keys, equal
    to the trial trained alone within float tolerance. A trial's ``run.should_stop()`` is
    asked at its log steps; a stopped trial is saved there and leaves the pack.

    Returns and raises as ``check_pack`` and ``Kernel.train_packed`` (``_base.py``) say.
    """
    check_pack(cfgs, runs, pack_key)
    if not cfgs:
        return []
    c0 = cfgs[0]
    pack = _Pack(list(cfgs), resolve_device(c0.device))
    P = pack.weights.shape[1]
    trials = [_Trial(c, r, history_stride(c, P)) for c, r in zip(cfgs, runs, strict=True)]
    every = sorted({tr.stride for tr in trials if tr.stride})  # the snapshot strides in use
    outcome: list[BaseException | None] = [None] * len(cfgs)
    pending: list[torch.Tensor] = []  # per-step losses [T] not yet read back
    for step in range(c0.steps):
        pending.append(pack.step())
        last = step == c0.steps - 1
        if every and (last or any(step % s == 0 for s in every)):
            snap = pack.weights.to(torch.float32, copy=True)  # (T, P): one copy for all
            for row, t in enumerate(pack.ids):
                if trials[t].stride and (last or step % trials[t].stride == 0):
                    trials[t].snapshot(snap[row], step)
        if step % c0.log_every and not last:
            continue
        # one host sync per log: per row, the losses since the last log and 3 movements
        vals = torch.cat([torch.stack(pending), pack.moves()]).T.tolist()
        pending.clear()
        stay, done = [], []
        for row, t in enumerate(pack.ids):
            tr = trials[t]
            try:
                new, (m_last, m_weight, m_all) = vals[row][:-3], vals[row][-3:]
                check_losses(tr.cfg, new, step - len(new) + 1)
                tr.losses += new
                metrics = {
                    "loss": new[-1],
                    "rel_move_last": m_last,
                    "rel_move_last_weight": m_weight,
                    "rel_move_all": m_all,
                }
                tr.run.log(metrics, step=step)
                if tr.run.should_stop():
                    if tr.stride and tr.history_steps[-1] != step:
                        tr.snapshot(pack.weights[row].to(torch.float32, copy=True), step)
                elif not last:
                    stay.append(row)
                    continue
                done.append(row)
            except Exception as e:  # this trial failed (its loss, or its run's I/O): it alone
                outcome[t] = e
        for t, state in _states(pack, done, trials):
            try:
                trials[t].run.save(state)
            except Exception as e:
                outcome[t] = e
            trials[t].history = []  # let its snapshots go
        if not stay:
            break
        if len(stay) < len(pack.ids):
            pack.keep(stay)
    return outcome


def _states(pack: _Pack, rows: list[int], trials: list[_Trial]) -> list[tuple[int, dict[str, Any]]]:
    """``(trial, state)`` of each of ``rows``, the state as the solo ``train`` saves it."""
    if not rows:
        return []
    ids = [pack.ids[r] for r in rows]
    grids = [np.linspace(trials[t].cfg.x_min, trials[t].cfg.x_max, GRID_SIZE) for t in ids]
    preds = pack.predict(rows, grids).cpu().numpy()
    P, out = pack.weights.shape[1], []
    for row, t, grid, pred in zip(rows, ids, grids, preds, strict=True):
        tr, init = trials[t], pack.init_states[t]
        history = torch.stack(tr.history).cpu().numpy() if tr.history else np.zeros((0, P), "f4")
        state = {
            "init_state": {k: v.clone() for k, v in init.items()},
            "final_state": pack.state(row),
            "param_shapes": [(name, tuple(v.shape)) for name, v in init.items()],
            "history": history,
            "history_steps": np.array(tr.history_steps, dtype=np.int64),
            "weights0": pack.flat0[row].float().cpu().numpy(),
            "losses": np.array(tr.losses, dtype=np.float32),
            "x": pack.xs[t],
            "y": pack.ys[t],
            "grid": grid,
            "pred": pred,
            "alpha": tr.cfg.alpha,
            "lr": tr.cfg.lr0 / tr.cfg.alpha**2,
            "dtype": str(pack.dtype).removeprefix("torch."),
        }
        out.append((t, to_numpy(state)))  # as a model file holds it: arrays, not tensors
    return out
