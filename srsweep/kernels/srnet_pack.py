"""Packed ``srnet`` trials: SRNets (and their co-trained critics) of one shape trained as
one stacked model, each trial still logged, stopped, failed and saved as its own run.

The parameters of T trials are stacked ``[T, ...]`` (``torch.func.stack_module_state``);
one epoch runs the SRNet forward (with the latents' Jacobian when the critic sees it),
the critic steps and the SD term as ``torch.func.vmap`` over ``functional_call`` of one
template, and updates every trial with ``StackedAdam`` (torch's fused Adam per trial,
each trial its own lr/betas/weight decay). No reduction crosses trials: the summed loss
gives each row exactly its own gradient, so a trial whose loss turns NaN/inf keeps the
NaNs in its own rows and fails alone, at the log where ``srnet.train`` raises and with
its message. A trial that stops or fails leaves the pack, which is re-stacked without it.

Per trial may differ: seed (init, critic init and library draws), lr, wd, sd (> 0),
sd_fun, the regulariser weights (which of l1, a1/a2, e1 are on is in the key), and the
critic's lr, wd and betas. What shapes the stack or the schedule (architecture, data,
epochs, log_freq, runtime, device, critic shape/mode/iters/loss, extras, library) is in
``pack_key``. Not packed: a fixed critic (``disc.from_run``) and a gradient penalty
(``disc.gp > 0``): their keys are the whole config, and a pack of them (only identical
configs) trains each trial with ``srnet.train``, one after another.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
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

from srsweep.kernels._base import check_pack
from srsweep.kernels.common import funlib
from srsweep.kernels.common.batched import StackedAdam
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import resolve_device

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.common.optim import Adam
    from srsweep.kernels.dsn import SRNet
    from srsweep.kernels.srnet import SRNetConfig

__all__ = ["pack_key", "train_packed", "packable"]

_SD_FUNS = ("linear", "sigmoid", "logsigmoid")
Tensors = dict[str, torch.Tensor]


def packable(cfg: SRNetConfig) -> bool:
    """Whether ``train_packed`` trains ``cfg`` batched (else it runs ``srnet.train``)."""
    return cfg.disc.from_run is None and not (cfg.cotrained and cfg.disc.gp > 0)


def pack_key(cfg: SRNetConfig) -> tuple[Hashable, ...]:
    """Trials with equal keys can train in one pack: same SRNet shape and masks, data,
    schedule, device, regularisers in use and critic setup."""
    if not packable(cfg):
        return ("srnet", "solo", cfg)  # only identical configs share it
    p = cfg.pairs()
    arch = (cfg.n_in, cfg.arch.out_size, cfg.arch.lat_size, *(p[k] for k in sorted(p)))
    data_ = (cfg.in_var, cfg.target_var, cfg.lat_var)
    regs = (cfg.l1 > 0, cfg.a1 > 0 or cfg.a2 > 0, cfg.e1 > 0)
    critic: tuple[Hashable, ...] = ()
    if cfg.cotrained:
        d = cfg.disc
        critic = (cfg.fun_lib, cfg.shuffle, cfg.iter_sample, cfg.ext, cfg.ext_type,
                  d.hid_num, d.hid_size, d.iters, d.loss)  # fmt: skip
    sched = (cfg.epochs, cfg.log_freq, cfg.runtime)
    return ("srnet", cfg.device, arch, data_, sched, regs, cfg.cotrained, critic)


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
class _Trial:
    """What one trial collects on the host until it is saved."""

    cfg: SRNetConfig
    run: Run
    gen: torch.Generator
    train_loss: list[float] = field(default_factory=list)
    logs: dict[str, list[Any]] = field(
        default_factory=lambda: {
            k: [] for k in ("val_loss", "corr_mats", "disc_preds", "disc_loss", "times")
        }  # fmt: skip
    )


class _OptRow:
    """One trial's view of a ``StackedAdam``, with ``Adam.state_dict``'s interface."""

    def __init__(self, opt: StackedAdam, row: int) -> None:
        self.opt, self.row = opt, row

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict(self.row)


def _leaves(stacked: Tensors) -> Tensors:
    return {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items()}


class _Pack:
    """The trials still training; row r of every stacked tensor is trial ``ids[r]``."""

    def __init__(self, cfgs: list[SRNetConfig], device: torch.device) -> None:
        from srsweep.kernels import srnet

        c0 = cfgs[0]
        self.c0, self.device, self.ids = c0, device, list(range(len(cfgs)))
        self.use_sd = c0.cotrained
        self.ext = c0.ext if self.use_sd else ()
        regs = (c0.l1 > 0, c0.a1 > 0 or c0.a2 > 0, c0.e1 > 0)
        models = [srnet.build_model(c).to(device) for c in cfgs]
        self.gen = _Gen(srnet.build_model(c0).to("meta"), regs, "grad" in self.ext)
        params, buffers = stack_module_state([_Gen(m, regs, False) for m in models])
        self.params, self.buffers = _leaves(params), {k: v.detach() for k, v in buffers.items()}
        self.gen_grads = {k: torch.zeros_like(v).detach() for k, v in self.params.items()}
        self.gen_opt = StackedAdam(
            list(self.params.values()), list(self.gen_grads.values()),
            [c.lr for c in cfgs], [(0.9, 0.999)] * len(cfgs), [c.wd for c in cfgs],
        )  # fmt: skip
        self.w = self._rows([[c.l1, c.a1, c.a2, c.e1] for c in cfgs])  # (T, 4)
        self.sd = self._rows([c.sd for c in cfgs])  # (T,)
        self.sd_fun = torch.tensor([_SD_FUNS.index(c.sd_fun) for c in cfgs], device=device)
        x, _, _ = srnet._rows(c0, "train", device)
        self.n = len(x)
        self.cparams: Tensors = {}
        if self.use_sd:
            critics = [srnet._make_critic(c, self.n).to(device) for c in cfgs]
            self.critic = srnet._make_critic(c0, self.n).to("meta")
            cp, _ = stack_module_state(critics)
            self.cparams = _leaves(cp)
            self.crit_grads = {k: torch.zeros_like(v).detach() for k, v in self.cparams.items()}
            d = [c.disc for c in cfgs]
            self.crit_opt = StackedAdam(
                list(self.cparams.values()), list(self.crit_grads.values()),
                [e.lr for e in d], [e.betas for e in d], [e.wd for e in d],
            )  # fmt: skip
            self.lib = funlib.FunctionLibrary(c0.fun_lib)
            # what ``srnet._real_batch`` reads of a critic: its library and extras
            self.draws = srnet._Critic(self.critic, c0.ext, c0.ext_type, lib=self.lib)

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
        """``srnet._extras`` for the stack: each ``[T, lat, N, in]``."""
        return [
            x.expand(T, lat, -1, -1) if name == "input" else jac.transpose(1, 2)
            for name in self.ext
        ]

    def step(self, trials: list[_Trial], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One epoch of every trial, as ``srnet._step``; returns the records ``[T, 8]``."""
        from srsweep.kernels import srnet

        T, c0 = len(self.ids), self.c0
        pred, lat, jac, reg = self.forward(x)
        zero = x.new_zeros(T)
        ok, terms = zero, x.new_zeros(T, 3)
        if self.use_sd:
            L = lat.shape[2]
            fake = critic_input(lat.detach().mT, self.extras(x, jac.detach(), T, L), c0.ext_type)
            reals = torch.stack([srnet._real_batch(tr.cfg, self.draws, x, tr.gen)
                                 for tr in trials])  # fmt: skip  # (T, R, L, ...)
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
            phi = torch.where(kind == 0, -p, torch.where(kind == 1, torch.sigmoid(-p),
                                                         F.softplus(-p)))  # fmt: skip
            l_sd, p_mean = self.sd * phi.mean(1), p.mean(1)
            loss = loss + l_sd
        grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
        for buf, g in zip(self.gen_grads.values(), grads, strict=True):
            buf.copy_(g)
        self.gen_opt.step(list(range(T)))
        return torch.cat([torch.stack([loss, pred_loss, l_sd, p_mean, ok], 1), terms], 1).detach()

    @torch.no_grad()
    def evaluate(self, xv: torch.Tensor, yv: torch.Tensor, gv: torch.Tensor) -> list[Any]:
        """Per row, ``srnet._evaluate``'s (val_loss, correlation matrix)."""
        from srsweep.kernels import srnet

        pred, lat, _, _ = self.forward(xv)
        return [
            (F.mse_loss(pred[r], yv).item(), srnet._correlations(lat[r], gv).cpu().numpy())
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

    def save(self, row: int, tr: _Trial, split: tuple[torch.Tensor, ...]) -> None:
        """Save row's trial as ``srnet.train`` does (its model, critic and optimisers)."""
        from srsweep.kernels import srnet

        cfg = tr.cfg
        model = srnet.build_model(cfg).to(self.device)
        named = {**self.params, **self.buffers}
        state = {k.removeprefix("net."): v[row].detach().clone() for k, v in named.items()}
        model.load_state_dict(state)
        c = None
        if self.use_sd:
            net = srnet._make_critic(cfg, self.n).to(self.device)
            net.load_state_dict({k: v[row].detach().clone() for k, v in self.cparams.items()})
            c = srnet._Critic(net, cfg.ext, cfg.ext_type, cast("Adam", _OptRow(self.crit_opt, row)),
                              self.lib)  # fmt: skip
        opt = cast("Adam", _OptRow(self.gen_opt, row))
        srnet._save(cfg, tr.run, model, opt, c, tr.train_loss, tr.logs, split)


def train_packed(cfgs: list[SRNetConfig], runs: list[Run]) -> list[BaseException | None]:
    """Train ``cfgs`` as one stacked model, each trial logging and saving to its ``run``.

    Each trial logs ``srnet.train``'s metrics at its steps and saves its state keys, equal
    to the trial trained alone within float tolerance. A trial's ``run.should_stop()`` is
    asked at its log steps; a stopped trial is saved there and leaves the pack.

    Returns and raises as ``check_pack`` and ``Kernel.train_packed`` (``_base.py``) say.
    """
    from srsweep.kernels import srnet

    check_pack(cfgs, runs, pack_key)
    if not cfgs:
        return []
    outcome: list[BaseException | None] = [None] * len(cfgs)
    c0 = cfgs[0]
    if not packable(c0):  # fixed critic or gradient penalty: each trial alone
        for t, (cfg, run) in enumerate(zip(cfgs, runs, strict=True)):
            try:
                srnet.train(cfg, run)
            except Exception as e:
                outcome[t] = e
        return outcome
    device = resolve_device(c0.device)
    x, y, _ = srnet._rows(c0, "train", device)
    xv, yv, gv = srnet._rows(c0, "val", device)
    split = (x, y, xv, yv, gv)
    pack = _Pack(list(cfgs), device)
    trials = [_Trial(c, r, torch.Generator().manual_seed(c.seed))
              for c, r in zip(cfgs, runs, strict=True)]  # fmt: skip
    pending: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for epoch in range(c0.epochs):
        pending.append(pack.step([trials[t] for t in pack.ids], x, y))
        elapsed = time.perf_counter() - t0
        last = epoch == c0.epochs - 1 or (c0.runtime is not None and elapsed > c0.runtime)
        if epoch % c0.log_freq != 0 and not last:
            continue
        records = torch.stack(pending, 1).cpu().tolist()  # (T, E, 8): one host sync
        pending.clear()
        evals = pack.evaluate(xv, yv, gv)
        stay, done = [], []
        for row, t in enumerate(pack.ids):
            tr, cfg = trials[t], trials[t].cfg
            try:
                recs = records[row]
                srnet._check(recs, epoch - len(recs) + 1, cfg)
                tr.train_loss += [r[0] for r in recs]
                loss, pred_loss, l_sd, p_mean, ok, l_r, l_f, pen = recs[-1]
                val_loss, corr = evals[row]
                log = {"epoch": epoch, "time": elapsed, "train_loss": loss,
                       "pred_loss": pred_loss, "val_loss": val_loss,
                       "min_corr": srnet._min_corr(corr)}  # fmt: skip
                if pack.use_sd:
                    share = abs(l_sd) / max(abs(l_sd) + abs(pred_loss), 1e-30)
                    log.update(disc_preds=p_mean, disc_loss=l_sd, sd_share=share)
                    log.update(critic_acc=ok / (cfg.disc.iters * 2 * cfg.arch.lat_size),
                               critic_loss=l_r + l_f + cfg.disc.gp * pen)  # fmt: skip
                values = (val_loss, corr, p_mean, l_sd, elapsed)
                for key, value in zip(tr.logs, values, strict=True):
                    tr.logs[key].append(value)
                tr.run.log(log, step=epoch)
                if not last and not tr.run.should_stop():
                    stay.append(row)
                    continue
                done.append(row)
            except Exception as e:  # this trial failed (its loss, or its run's I/O): it alone
                outcome[t] = e
        for row in done:
            try:
                pack.save(row, trials[pack.ids[row]], split)
            except Exception as e:
                outcome[pack.ids[row]] = e
        if not stay:
            break
        if len(stay) < len(pack.ids):
            pack.keep(stay)
    return outcome
