"""The stacked model of a packed ``srnet`` run: T trials' SRNets (and co-trained
critics) as one set of ``[T, ...]`` parameters, stepped, evaluated, narrowed and saved
row by row, exactly as each trial's solo ``train`` would (``packed.py`` drives it).

One epoch runs the SRNet forward (with the latents' Jacobian when the critic sees it),
the critic steps and the SD term as ``torch.func.vmap`` over ``functional_call`` of one
template, and updates every trial with ``StackedAdam``. No reduction crosses trials: the
summed loss gives each row exactly its own gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.func import stack_module_state
from torch.func import vmap

from srsweep.kernels.common import funlib
from srsweep.kernels.common.batched import StackedAdam
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.srnet import shared
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.critic import Critic
from srsweep.kernels.srnet.critic import make_critic
from srsweep.kernels.srnet.critic import real_batch

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.common.optim import Adam
    from srsweep.kernels.srnet.dsn import SRNet

__all__ = ["Trial", "Pack"]

_SD_FUNS = ("linear", "sigmoid", "logsigmoid")
Tensors = dict[str, torch.Tensor]


class _Gen(nn.Module):
    """An SRNet and its regularisers in one forward, for ``functional_call``."""

    def __init__(self, net: SRNet, regs: tuple[bool, bool, bool], jacobian: bool) -> None:
        super().__init__()
        self.net, self.regs, self.jacobian = net, regs, jacobian

    def forward(
        self, x: torch.Tensor, w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [N, in]``, ``w`` = (l1, a1, a2, e1) -> pred, latents, d lat / d x (a 0-d
        placeholder when not asked for) and the regulariser term, as ``srnet``'s."""
        pred, lat, jac = self.net(x, jacobian=self.jacobian)
        reg = lat.new_zeros(())
        if self.regs[0]:
            reg = reg + w[0] * lat.abs().sum() / lat.shape[1]
        for half in self.net.dsn_halves():
            norms = half.alpha.abs().sum(1)
            if self.regs[1]:
                reg = reg + w[1] * norms.sum() + w[2] * norms.pow(2).sum().sqrt()
            if self.regs[2]:
                reg = reg + w[3] * half.entropy().pow(2).sum()
        return pred, lat, jac if jac is not None else lat.new_zeros(()), reg


@dataclass
class Trial:
    """What one trial collects on the host until it is saved."""

    cfg: SRNetConfig
    run: Run
    gen: torch.Generator
    train_loss: list[float] = field(default_factory=list)
    logs: dict[str, list[Any]] = field(
        default_factory=lambda: {
            k: [] for k in ("val_loss", "corr_mats", "disc_preds", "disc_loss", "times")
        }
    )


class _OptRow:
    """One trial's view of a ``StackedAdam``, with ``Adam.state_dict``'s interface."""

    def __init__(self, opt: StackedAdam, row: int) -> None:
        self.opt, self.row = opt, row

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict(self.row)


def _leaves(stacked: Tensors) -> Tensors:
    return {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items()}


class Pack:
    """The trials still training; row r of every stacked tensor is trial ``ids[r]``."""

    def __init__(self, cfgs: list[SRNetConfig], device: torch.device) -> None:
        c0 = cfgs[0]
        self.c0, self.device, self.ids = c0, device, list(range(len(cfgs)))
        self.use_sd = c0.cotrained
        self.ext = c0.ext if self.use_sd else ()
        regs = (c0.l1 > 0, c0.a1 > 0 or c0.a2 > 0, c0.e1 > 0)
        models = [shared.build_model(c).to(device) for c in cfgs]
        self.gen = _Gen(shared.build_model(c0).to("meta"), regs, "grad" in self.ext)
        params, buffers = stack_module_state([_Gen(m, regs, False) for m in models])
        self.params, self.buffers = _leaves(params), {k: v.detach() for k, v in buffers.items()}
        self.gen_grads = {k: torch.zeros_like(v).detach() for k, v in self.params.items()}
        self.gen_opt = StackedAdam(
            list(self.params.values()),
            list(self.gen_grads.values()),
            [c.lr for c in cfgs],
            [(0.9, 0.999)] * len(cfgs),
            [c.wd for c in cfgs],
        )
        self.w = self._rows([[c.l1, c.a1, c.a2, c.e1] for c in cfgs])  # (T, 4)
        self.sd = self._rows([c.sd for c in cfgs])  # (T,)
        self.sd_fun = torch.tensor([_SD_FUNS.index(c.sd_fun) for c in cfgs], device=device)
        x, _, _ = shared.rows(c0, "train", device)
        self.n = len(x)
        self.cparams: Tensors = {}
        if self.use_sd:
            critics = [make_critic(c, self.n).to(device) for c in cfgs]
            self.critic = make_critic(c0, self.n).to("meta")
            cp, _ = stack_module_state(critics)
            self.cparams = _leaves(cp)
            self.crit_grads = {k: torch.zeros_like(v).detach() for k, v in self.cparams.items()}
            d = [c.disc for c in cfgs]
            self.crit_opt = StackedAdam(
                list(self.cparams.values()),
                list(self.crit_grads.values()),
                [e.lr for e in d],
                [e.betas for e in d],
                [e.wd for e in d],
            )
            self.lib = funlib.FunctionLibrary(c0.fun_lib)
            # what ``real_batch`` reads of a critic: its library and extras
            self.draws = Critic(self.critic, c0.ext, c0.ext_type, lib=self.lib)

    def _rows(self, values: list[Any]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def forward(self, x: torch.Tensor, params: Tensors | None = None) -> tuple[torch.Tensor, ...]:
        """Every trial's ``_Gen`` on the shared ``x``: each output ``[T, ...]``."""
        p = self.params if params is None else params

        def one(pr: Tensors, bu: Tensors, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out: tuple[torch.Tensor, ...] = functional_call(self.gen, (pr, bu), (x, w))
            return out

        out: tuple[torch.Tensor, ...] = vmap(one)(p, self.buffers, self.w)
        return out

    def critic_logits(self, cparams: Tensors, inp: torch.Tensor) -> torch.Tensor:
        """``[T, B, ...]`` critic inputs -> logits ``[T, B]``."""

        def one(pr: Tensors, z: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(self.critic, pr, (z,))
            return out

        out: torch.Tensor = vmap(one)(cparams, inp)
        return out

    def extras(self, x: torch.Tensor, jac: torch.Tensor, T: int, lat: int) -> list[torch.Tensor]:
        """``shared.extras`` for the stack: each ``[T, lat, N, in]``."""
        return [
            x.expand(T, lat, -1, -1) if name == "input" else jac.transpose(1, 2)
            for name in self.ext
        ]

    def step(self, trials: list[Trial], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One epoch of every trial, as ``solo._step``; returns the records ``[T, 8]``."""
        T, c0 = len(self.ids), self.c0
        pred, lat, jac, reg = self.forward(x)
        zero = x.new_zeros(T)
        ok, terms = zero, x.new_zeros(T, 3)
        if self.use_sd:
            L = lat.shape[2]
            fake = critic_input(lat.detach().mT, self.extras(x, jac.detach(), T, L), c0.ext_type)
            # (T, R, L, ...)
            reals = torch.stack([real_batch(tr.cfg, self.draws, x, tr.gen) for tr in trials])
            n_r = reals.shape[2]
            labels = torch.arange(n_r + fake.shape[1], device=x.device) < n_r
            correct = torch.zeros(T, dtype=torch.long, device=x.device)
            rows = list(range(T))
            for i in range(c0.disc.iters):
                real = reals[:, i if reals.shape[1] > 1 else 0]
                p = self.critic_logits(self.cparams, torch.cat([real, fake], 1))
                p_r, p_f = p[:, :n_r], p[:, n_r:]
                if c0.disc.loss == "wgan":
                    l_r, l_f = -p_r.mean(1), p_f.mean(1)
                else:
                    l_r, l_f = F.softplus(-p_r).mean(1), F.softplus(p_f).mean(1)
                grads = torch.autograd.grad((l_r + l_f).sum(), list(self.cparams.values()))
                for buf, g in zip(self.crit_grads.values(), grads, strict=True):
                    buf.copy_(g)
                self.crit_opt.step(rows)
                correct = correct + ((p.detach() > 0) == labels).sum(1)
                terms = torch.stack([l_r, l_f, torch.zeros_like(l_r)], 1).detach()
            ok = correct.to(zero.dtype)
        pred_loss = (pred - y).pow(2).flatten(1).mean(1)
        loss = pred_loss + reg
        l_sd, p_mean = zero, zero
        if self.use_sd:
            cp = {k: v.detach() for k, v in self.cparams.items()}
            inp = critic_input(lat.mT, self.extras(x, jac, T, lat.shape[2]), c0.ext_type)
            p = self.critic_logits(cp, inp)  # (T, lat)
            kind = self.sd_fun.unsqueeze(1)
            phi = torch.where(
                kind == 0, -p, torch.where(kind == 1, torch.sigmoid(-p), F.softplus(-p))
            )
            l_sd, p_mean = self.sd * phi.mean(1), p.mean(1)
            loss = loss + l_sd
        grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
        for buf, g in zip(self.gen_grads.values(), grads, strict=True):
            buf.copy_(g)
        self.gen_opt.step(list(range(T)))
        return torch.cat([torch.stack([loss, pred_loss, l_sd, p_mean, ok], 1), terms], 1).detach()

    @torch.no_grad()
    def evaluate(self, xv: torch.Tensor, yv: torch.Tensor, gv: torch.Tensor) -> list[Any]:
        """Per row, ``solo._evaluate``'s (val_loss, correlation matrix)."""
        pred, lat, _, _ = self.forward(xv)
        return [
            (F.mse_loss(pred[r], yv).item(), shared.correlations(lat[r], gv).cpu().numpy())
            for r in range(len(self.ids))
        ]

    def keep(self, rows: list[int]) -> None:
        """Re-stack with only ``rows`` (trials that left no longer cost compute)."""
        idx = torch.as_tensor(rows, device=self.device)
        self.ids = [self.ids[r] for r in rows]

        def sel(d: Tensors, leaf: bool) -> Tensors:
            out = {k: v.detach().index_select(0, idx) for k, v in d.items()}
            return {k: v.requires_grad_(True) for k, v in out.items()} if leaf else out

        self.params, self.buffers = sel(self.params, True), sel(self.buffers, False)
        self.gen_grads = sel(self.gen_grads, False)
        self.gen_opt.select(rows, list(self.params.values()), list(self.gen_grads.values()))
        self.w, self.sd = self.w.index_select(0, idx), self.sd.index_select(0, idx)
        self.sd_fun = self.sd_fun.index_select(0, idx)
        if self.use_sd:
            self.cparams, self.crit_grads = sel(self.cparams, True), sel(self.crit_grads, False)
            self.crit_opt.select(rows, list(self.cparams.values()), list(self.crit_grads.values()))

    def save(self, row: int, tr: Trial, split: tuple[torch.Tensor, ...]) -> None:
        """Save row's trial as the solo ``train`` does (its model, critic and optimisers)."""
        cfg = tr.cfg
        model = shared.build_model(cfg).to(self.device)
        named = {**self.params, **self.buffers}
        state = {k.removeprefix("net."): v[row].detach().clone() for k, v in named.items()}
        model.load_state_dict(state)
        c = None
        if self.use_sd:
            net = make_critic(cfg, self.n).to(self.device)
            net.load_state_dict({k: v[row].detach().clone() for k, v in self.cparams.items()})
            c = Critic(
                net, cfg.ext, cfg.ext_type, cast("Adam", _OptRow(self.crit_opt, row)), self.lib
            )
        opt = cast("Adam", _OptRow(self.gen_opt, row))
        shared.save(cfg, tr.run, model, opt, c, tr.train_loss, tr.logs, split)
