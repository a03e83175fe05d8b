"""Packed ``stn`` trials as stacked tensors: the stacked Keras Adam and the pack, whose
forward and backward passes are written out by hand (seeds 000, 001).

A width-4 net's step is all launch and Python overhead, so the pack issues as few ops
as it can (``../shared/reference/kernels.md`` section 4), with no autograd: per layer
the forward pass is three ops and the backward pass one or two ``bmm`` and two more
(layouts in ``srsweep.kernels.stn.layout``). The weights' Adam runs on ``theta`` with
per-trial lr and eps columns, in ``KerasAdam``'s arithmetic order; the trials of a pack
take every step together.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

import torch
import torch.nn.functional as F

from srsweep.kernels.stn.hypernet import BETAS
from srsweep.kernels.stn.hypernet import BLOCK
from srsweep.kernels.stn.hypernet import HyperNet
from srsweep.kernels.stn.hypernet import draw
from srsweep.kernels.stn.hypernet import entropy
from srsweep.kernels.stn.hypernet import to_unc
from srsweep.kernels.stn.layout import Inputs
from srsweep.kernels.stn.layout import Layout

if TYPE_CHECKING:
    from srsweep.kernels.stn.config import STNConfig

__all__ = ["Pack", "StackedAdam"]

# relu's backward as autograd computes it: the gradient where the output is > 0, else 0
_relu_grad = torch.ops.aten.threshold_backward.default


class StackedAdam:
    """``KerasAdam`` over stacked rows: ``lr`` and ``eps`` hold one value per trial,
    shaped to broadcast over its row; the step count is shared."""

    def __init__(self, like: torch.Tensor, lr: torch.Tensor, eps: torch.Tensor) -> None:
        self.m, self.v, self.t = torch.zeros_like(like), torch.zeros_like(like), 0
        self.lr, self.eps, (self.b1, self.b2) = lr, eps, BETAS

    def step(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.lerp_(grad, 1 - self.b1)
        self.v.mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        lr_t = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        # p + (-lr_t * m) / (√v + eps): addcdiv's order, with a tensor lr_t
        p.add_(torch.mul(self.m, lr_t.neg_()).div_(self.v.sqrt().add_(self.eps)))

    def select(self, idx: torch.Tensor, lr: torch.Tensor, eps: torch.Tensor) -> None:
        self.m, self.v = self.m.index_select(0, idx), self.v.index_select(0, idx)
        self.lr, self.eps = lr, eps


class Pack:
    """The trials still training, as stacked tensors: parameters ``theta`` (n, size), the
    hyperparameters ``unc`` and ``s`` (n, 1, 1), three optimisers, the current block of
    noise, and per-trial constants and work buffers rebuilt whenever trials leave."""

    def __init__(self, cfgs: list[STNConfig], device: torch.device) -> None:
        self.cfgs, c0 = list(cfgs), cfgs[0]
        self.kw: dict[str, Any] = {"dtype": getattr(torch, c0.dtype), "device": device}
        self.lay = Layout(c0)
        self.relu_in = [False] + [r for _, _, r, *_ in self.lay.layers[:-1]]
        self.C, self.E = self.lay.C.to(**self.kw), self.lay.E.to(**self.kw)
        self.gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
        nets = [HyperNet(c.L, c.M, c.gate, g) for c, g in zip(cfgs, self.gens, strict=True)]
        self.theta = torch.stack([self.lay.row(net) for net in nets]).to(**self.kw)
        dt = self.kw["dtype"]
        unc = [to_unc(torch.tensor(c.init_x_range, dtype=dt), c.x_min, c.x_max) for c in cfgs]
        self.unc = torch.stack(unc).view(-1, 1, 1).to(device)
        s0 = [math.log(math.expm1(c.init_scale)) for c in cfgs]  # inverse softplus
        self.s = torch.tensor(s0, **self.kw).view(-1, 1, 1)
        n, T, H, B = len(cfgs), c0.train_steps, c0.hyper_steps, c0.batch_size
        self.f = torch.zeros(n, 1, 2 * c0.eval_size, **self.kw)  # the last eval
        self._block(
            torch.zeros(2, 0, T, n, 1, B, **self.kw), torch.zeros(2, 0, H, n, 1, B, **self.kw)
        )
        self._constants()
        self.opts = {k: StackedAdam(p, *self.hyper[k]) for k, p in self.params().items()}
        self._weights()

    def params(self) -> dict[str, torch.Tensor]:
        return {"w": self.theta, "h": self.unc, "s": self.s}

    def _constants(self) -> None:
        """Per-trial constants of the current rows, work buffers, and their views."""
        cfgs, kw, lay = self.cfgs, self.kw, self.lay
        n, B, E = len(cfgs), cfgs[0].batch_size, cfgs[0].eval_size

        def col(key: str, *shape: int) -> torch.Tensor:
            return torch.tensor([getattr(c, key) for c in cfgs], **kw).view(n, *shape)

        self.lo, self.c = col("x_min", 1, 1), col("entropy_weight", 1, 1)
        self.span = torch.tensor([c.x_max - c.x_min for c in cfgs], **kw).view(n, 1, 1)
        self.hyper = {
            "w": (col("train_lr", 1), col("adam_eps", 1)),
            "h": (col("hyper_lr", 1, 1), col("adam_eps", 1, 1)),
            "s": (col("scale_lr", 1, 1), col("adam_eps", 1, 1)),
        }
        ins = [i for i, *_ in lay.layers]
        self.train, self.eval = Inputs(ins, n, B, kw), Inputs(ins, n, 2 * E, kw)
        grids = [torch.linspace(-c.eval_range, c.eval_range, E, **kw) for c in cfgs]
        self.x_eval = torch.stack(grids).view(n, 1, E)
        self.eval.a[0].copy_(self.x_eval.repeat(1, 1, 2))  # perturbed, then clean
        self.y_eval = self.eval.a[0] ** 2  # (n, 1, 2E)
        self.h_eval = torch.empty(n, 1, 2 * E, **kw)
        self.h_halves = (self.h_eval[..., :E], self.h_eval[..., E:])
        # backward: ∂loss/∂u per layer, and the terms of ∂loss/∂h (summed over dim 1)
        self.gu = [torch.empty(n, 2 * i + 2, B, **kw) for i in ins]
        self.gu_a = [g[:, :i] for i, g in zip(ins, self.gu, strict=True)]
        self.gu_ah = [g[:, i + 1 : 2 * i + 1] for i, g in zip(ins, self.gu, strict=True)]
        self.gu_ah1 = [g[:, i + 1 :] for i, g in zip(ins, self.gu, strict=True)]
        self.gh = torch.empty(n, sum(i + 1 for i in ins), B, **kw)
        ends = [sum(ins[:k]) + k for k in range(len(ins) + 1)]
        self.gh_rows = [self.gh[:, a:b] for a, b in zip(ends, ends[1:], strict=False)]
        # theta's parts, and the gate-scaled weights per layer
        Q = lay.Q
        self.P, self.G = self.theta[:, :Q], self.theta[:, Q:]
        self.S, self.weff = torch.empty(n, Q, **kw), torch.empty(n, Q, **kw)
        self.w = [
            self.weff[:, off : off + o * (2 * i + 2)].view(n, o, 2 * i + 2)
            for i, o, _, off, *_ in lay.layers
        ]
        self.wT = [w.transpose(1, 2) for w in self.w]
        self.zero = torch.zeros(n, 1, **kw)

    def _weights(self) -> None:
        """Refresh the gate-scaled weights ``Weff = P ⊙ (C + G @ E)`` from ``theta``."""
        torch.addmm(self.C, self.G, self.E, out=self.S)
        torch.mul(self.P, self.S, out=self.weff)
        self.sp = F.softplus(self.s)

    def to_range(self, unc: torch.Tensor) -> torch.Tensor:
        """``to_range`` with each trial's interval."""
        return torch.addcmul(self.lo, self.span, torch.sigmoid(unc))

    def forward(self, h: torch.Tensor, buf: Inputs) -> torch.Tensor:
        """The nets' outputs (n, 1, cols) at inputs already in ``buf.a[0]`` and
        hyperparameter values ``h`` (n, 1, cols or 1); ``buf`` keeps every layer's input."""
        z = self.zero
        for k, w in enumerate(self.w):
            if k:
                torch.clamp_min(z, 0, out=buf.a[k]) if self.relu_in[k] else buf.a[k].copy_(z)
            torch.mul(buf.a1[k], h, out=buf.ah[k])  # [a, 1] · h = [a·h, h]
            z = torch.bmm(w, buf.u[k])  # (n, out, cols)
        return z

    def backward(self, g: torch.Tensor, h: torch.Tensor, weights: bool) -> torch.Tensor | None:
        """Backpropagate ``g`` = ∂loss/∂out (n, 1, B) through the last ``forward`` on
        ``self.train``.

        Returns the gradient of ``theta`` (n, size) when ``weights``; otherwise fills
        ``self.gh`` with terms whose sum over dim 1 is ∂loss/∂h per sample.
        """
        buf, grads = self.train, []
        for k in reversed(range(len(self.w))):
            if weights:
                grads.append(torch.bmm(g, buf.uT[k]).view(len(g), -1))  # ∂/∂Weff
                if k == 0:
                    break
            torch.bmm(self.wT[k], g, out=self.gu[k])
            if not weights:
                torch.mul(self.gu_ah1[k], buf.a1[k], out=self.gh_rows[k])
                if k == 0:
                    break
            g = torch.addcmul(self.gu_a[k], self.gu_ah[k], h)  # ∂/∂a
            if self.relu_in[k]:
                g = _relu_grad(g, buf.a[k], 0)
        if not weights:
            return None
        gw = torch.cat(grads[::-1], 1)
        return torch.cat([gw * self.S, (gw * self.P) @ self.E.T], 1)

    def weight_step(self, eps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One weight step of every trial on ε, u (n, 1, B); its losses (n, 1)."""
        h = torch.addcmul(self.unc, self.sp, eps)  # the data depend on h, not the grads
        x = self.train.a[0]
        torch.mul(self.to_range(h), noise, out=x)
        r = self.forward(h, self.train) - x**2
        grad = self.backward(r * 2.0, h, weights=True)
        assert grad is not None
        self.opts["w"].step(self.theta, grad)
        self._weights()
        return r.pow(2).sum(-1)

    def hyper_step(self, eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Two tapes as the solo ``train``: unc first, then s on the same ε and data with the
        updated unc; the second tape's losses (n, 1)."""
        self.train.a[0].copy_(x)
        y, B = x**2, x.shape[-1]
        h = torch.addcmul(self.unc, self.sp, eps)
        self.backward((self.forward(h, self.train) - y) * 2.0, h, weights=False)
        self.opts["h"].step(self.unc, self.gh.sum((1, 2)).view(-1, 1, 1))
        h = torch.addcmul(self.unc, self.sp, eps)
        r = self.forward(h, self.train) - y
        loss = (r.pow(2) - self.c * entropy(self.s)).sum(-1)
        self.backward(r * 2.0, h, weights=False)
        # ∂/∂s = σ(s) (Σ_b ∂loss/∂h_b ε_b - B c / softplus(s)): through h and the entropy
        dh_eps = (self.gh.sum(1, keepdim=True) * eps).sum(-1, keepdim=True)
        grad = torch.sigmoid(self.s) * (dh_eps - self.c * float(B) / self.sp)
        self.opts["s"].step(self.s, grad)
        self.sp = F.softplus(self.s)
        return loss

    def warm_up(self, steps: int) -> torch.Tensor:
        """``steps`` weight steps on each trial's warm-up draws; their losses (n, steps)."""
        B = self.cfgs[0].batch_size
        draws = [draw(g, (steps, B, 1), 1.0).view(2, steps, 1, B) for g in self.gens]
        eps, noise = torch.stack(draws, 2).to(**self.kw)  # (steps, n, 1, B) each
        return torch.cat([self.weight_step(e, u) for e, u in zip(eps, noise, strict=True)], 1)

    def draw(self, cycle: int) -> None:
        """Each trial's noise for the block of cycles from ``cycle``, as the solo ``train``
        draws it; trials that end sooner draw less (zeros pad their rows)."""
        c0, n = self.cfgs[0], len(self.cfgs)
        T, H, B = c0.train_steps, c0.hyper_steps, c0.batch_size
        sizes = [min(BLOCK, c.max_cycles - cycle) for c in self.cfgs]
        w = torch.zeros(2, max(sizes), T, n, 1, B, dtype=torch.float64)
        v = torch.zeros(2, max(sizes), H, n, 1, B, dtype=torch.float64)
        for t, (k, c, gen) in enumerate(zip(sizes, self.cfgs, self.gens, strict=True)):
            w[:, :k, :, t] = draw(gen, (k, T, B, 1), 1.0).view(2, k, T, 1, B)
            if H:
                v[:, :k, :, t] = draw(gen, (k, H, B, 1), c.val_range).view(2, k, H, 1, B)
        self._block(w.to(**self.kw), v.to(**self.kw))

    def _block(self, w: torch.Tensor, v: torch.Tensor) -> None:
        """Keep a block of noise (2, cycles, steps, n, 1, B) and its per-step views."""
        self.block = (w, v)
        # [cycle][step] -> (ε, u) or (ε, x) of every trial, (n, 1, B) each
        self.steps_w = [list(zip(*c, strict=True)) for c in zip(*w, strict=True)]
        self.steps_h = [list(zip(*c, strict=True)) for c in zip(*v, strict=True)]

    def cycle(self, i: int) -> torch.Tensor:
        """Cycle ``i`` of the current block for every trial: weight steps, hyper steps,
        then the eval; each trial's record (n, 6) in ``NAMES``' order."""
        wloss = hloss = self.zero
        for eps, noise in self.steps_w[i]:
            wloss = self.weight_step(eps, noise)
            eps_last = eps
        for eps, x in self.steps_h[i]:
            hloss = self.hyper_step(eps, x)
            eps_last = eps
        # the port evaluates with the last perturbed h batch (see solo.train)
        h, E = torch.addcmul(self.unc, self.sp, eps_last), self.x_eval.shape[-1]
        self.h_halves[0].copy_(h if h.shape[-1] == E else h.mean(-1, keepdim=True))
        self.h_halves[1].copy_(self.unc)
        self.f = self.forward(self.h_eval, self.eval)
        dists = (self.f - self.y_eval).abs().view(len(h), 2, E).amax(-1)
        rec = [self.to_range(self.unc), self.sp, wloss, hloss, dists]
        return torch.cat([x.view(len(h), -1) for x in rec], 1)

    def keep(self, rows: list[int]) -> None:
        """Re-stack with only ``rows``, in that order."""
        idx = torch.tensor(rows, device=self.theta.device)
        self.cfgs = [self.cfgs[r] for r in rows]
        self.gens = [self.gens[r] for r in rows]
        self.theta, self.unc, self.s = (p.index_select(0, idx) for p in self.params().values())
        self._block(*(b.index_select(3, idx) for b in self.block))
        self.f = self.f.index_select(0, idx)
        self._constants()
        for k, opt in self.opts.items():
            opt.select(idx, *self.hyper[k])
        self._weights()

    def grid(self, row: int) -> dict[str, Any]:
        """Row's x_eval, f_eval and f_eval_clean (E,) each, as the solo ``train`` saves them."""
        E = self.x_eval.shape[-1]
        f, x = self.f[row, 0].detach().cpu(), self.x_eval[row, 0].cpu()
        return {
            "x_eval": x.clone().numpy(),
            "f_eval": f[:E].clone().numpy(),
            "f_eval_clean": f[E:].clone().numpy(),
        }

    def state(self, row: int) -> dict[str, Any]:
        """Row's net and hyperparameters, as the solo ``train`` saves them."""
        model = self.lay.state_dict(self.theta[row])
        return {"model": model, "unc": self.unc[row].item(), "s": self.s[row].item()}
