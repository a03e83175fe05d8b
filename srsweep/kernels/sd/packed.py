"""Packed ``sd`` trials (seed 003): several critics with the same layer shapes trained as
one batched model, each trial still logged, stopped, failed and saved as its own run.

The contract is random-stream equivalence: every trial draws from its own CPU generator,
seeded as ``solo.train`` seeds it, exactly what it would draw alone (critic init, generator
weights, library samples, penalty mixes only when its ``disc.gp`` > 0), so its history
equals the same trial trained by ``solo.train`` within float tolerance. Per trial may
differ: seed, ``disc.lr``/``wd``/``betas``/``gp``/``loss``/``iters``, ``arch.lat_size``
and ``avg_hor``; everything that shapes the critic or the schedule is in
``config.pack_key``.

- ``lat_size``: samples are padded to the pack's largest; padded samples are masked out of
  losses, accuracy and penalty (``torch.where``, so they add exact zeros to gradients).
- ``iters``: the pack takes the largest number of critic steps per epoch, each on the
  prefix of trials (sorted by iters) that take it; the others' parameters, Adam moments,
  step counts and records stay put.
- Hidden sizes are not padded: zero-padded units would stay zero, but on CPU a padded
  64-wide critic in a 512-wide pack costs 64x its FLOPs, and ``pack_key`` keeps the shapes
  so the agent can group trials by it. Packs shrink (re-stack) when trials leave.
- A trial whose loss turns NaN/inf fails alone, at the log step where ``solo.train`` would
  raise, with its message; until then its NaNs stay in its own rows (every reduction is
  per trial). ``runtime`` limits the whole pack.
- Each trial is saved, and checkpointed at log steps, as ``solo.train`` saves it, so an
  interrupted one resumes alone. A pack does not resume: its trials start afresh.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING
from typing import Any

import torch
import torch.nn.functional as F

from srsweep.kernels._base import check_pack
from srsweep.kernels.common import batched
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.sd.config import library
from srsweep.kernels.sd.config import pack_key
from srsweep.kernels.sd.draws import EpochData
from srsweep.kernels.sd.draws import PackDraws
from srsweep.kernels.sd.model import draws_generator
from srsweep.kernels.sd.model import log_epochs
from srsweep.kernels.sd.model import make_critic
from srsweep.kernels.sd.model import saved_state
from srsweep.kernels.sd.model import train_inputs

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.common.funlib import FunctionLibrary
    from srsweep.kernels.sd.config import SDConfig

__all__ = ["train_packed"]


class _Pack:
    """The trials still training: stacked critics, optimiser, draws and per-trial masks.

    Rows are sorted by ``disc.iters``, longest first, so the trials that take critic step
    i are a prefix of the stack: step i runs on views ``[:n_i]`` and a trial past its own
    iters costs nothing (the study draws iters from 1 to 10).
    """

    def __init__(self, cfgs: list[SDConfig], lib: FunctionLibrary, x: torch.Tensor) -> None:
        with torch.device("meta"):
            self.template = make_critic(cfgs[0], len(x))  # names and shapes only
        self.ids = sorted(range(len(cfgs)), key=lambda t: -cfgs[t].disc.iters)
        self.cfgs = [cfgs[t] for t in self.ids]
        self.lib, self.x = lib, x
        self.stack = batched.Stack(self.template, len(cfgs), x.device)
        inits: dict[int, dict[str, torch.Tensor]] = {}  # one init per seed: studies share seeds
        for row, c in enumerate(self.cfgs):
            if c.seed not in inits:
                inits[c.seed] = make_critic(c, len(x)).state_dict()
            self.stack.load(row, inits[c.seed])
        self.opt = batched.StackedAdam(
            self.stack.leaves(),
            list(self.stack.grad.values()),
            lr=[c.disc.lr for c in self.cfgs],
            betas=[c.disc.betas for c in self.cfgs],
            weight_decay=[c.disc.wd for c in self.cfgs],
        )
        self.gens = [draws_generator(c) for c in self.cfgs]
        self._rows()

    def _rows(self) -> None:
        """Per-row constants, the draws, and per-step views of the current rows."""
        cfgs, dev = self.cfgs, self.x.device
        self.draws = PackDraws(cfgs, self.gens, self.lib, self.x)
        L = self.draws.L
        self.lat = torch.tensor([c.arch.lat_size for c in cfgs], dtype=self.x.dtype, device=dev)
        self.valid = torch.arange(L, device=dev) < self.lat[:, None]  # (T, L)
        # Critic rows in solo.train's order: a trial's reals, its fakes, then its padding.
        # Row sums (bias gradients, large-K matmuls in embed mode) then see its samples
        # where a solo run has them, and padding only appends exact zeros.
        order = []
        for t, c in enumerate(cfgs):
            n = c.arch.lat_size
            rows = [*range(n), *range(L, L + n), *range(n, L), *range(L + n, 2 * L)]
            order += [2 * L * t + r for r in rows]  # into cat([reals, fakes], 1).flatten(0, 1)
        self.order = torch.tensor(order, device=dev)
        r = torch.arange(2 * L, device=dev)
        self.is_real = r < self.lat[:, None]  # (T, 2L)
        self.is_fake = (r >= self.lat[:, None]) & (r < 2 * self.lat[:, None])
        self.bce = torch.tensor([c.disc.loss == "bce" for c in cfgs], device=dev)[:, None]
        self.gp = torch.tensor([c.disc.gp for c in cfgs], dtype=self.x.dtype, device=dev)
        # the critic as one chain of layers: the per-point embedding (if any), then the head
        parts = ["layers2"] if self.template.layers1 is None else ["layers1", "layers2"]
        # the one-unit layers (each part's last): their biases' gradients, their positions
        self.unit_biases, self.unit_layers, at = [], [], -1
        for part in parts:
            seq = self.template.get_submodule(part)
            assert isinstance(seq, torch.nn.Sequential)
            self.unit_biases.append(self.stack.grad[f"{part}.{len(seq) - 1}.bias"].view(-1))
            at += (len(seq) + 1) // 2
            self.unit_layers.append(at)
        self.steps = []  # per critic step: (rows taking it, layers, lat groups, any gp)
        for i in range(self.draws.I):
            n = sum(c.disc.iters > i for c in cfgs)
            layers = [layer for part in parts for layer in self.stack.sequential(part, n)]
            groups = [(lat, idx[idx < n]) for lat, idx in self.draws.groups]
            gp = any(c.disc.gp > 0 for c in cfgs[:n])
            self.steps.append((n, layers, groups, gp))

    @staticmethod
    def bias_grad(
        out: torch.Tensor, delta: torch.Tensor, groups: list[tuple[int, torch.Tensor]]
    ) -> None:
        """Set a one-unit layer's bias gradient ``out [T]``: ``delta [n, 2L, ...]`` summed
        per trial over its own 2 * lat_size rows only.

        Autograd would sum over the padding too, and a contiguous float sum rounds
        differently with trailing zeros. Under WGAN the last bias's gradient is exactly
        such a rounding residue (-mean + mean), which Adam turns into full-size steps, so
        only the same summation keeps a packed trial on its solo trajectory.
        """
        for lat, idx in groups:
            out[idx] = delta.index_select(0, idx)[:, : 2 * lat].flatten(1).sum(1)

    def epoch(self, batch: EpochData) -> torch.Tensor:
        """``critic_steps`` for every trial: ``[T, 7]`` records (correct predictions, last
        step's loss_real, loss_fake, raw gp, then whether each term was non-finite).

        A step is written out instead of recorded by autograd: one forward over each
        trial's reals, fakes and (gp) penalty mixes, one backward chain that gives the
        loss's deltas and the penalty's input gradient together, the penalty's double
        backward, one matmul per weight gradient. The losses' gradients with respect to
        the logits and the penalty's with respect to the input gradient are autograd's
        formulas for ``critic_steps``'s expressions (``_losses``, ``_penalty``).
        """
        T, L, dev = len(self.cfgs), self.draws.L, self.x.device
        correct = torch.zeros(T, dtype=torch.long, device=dev)
        terms = torch.zeros(T, 3, dtype=self.x.dtype, device=dev)
        bad = torch.zeros(T, 3, dtype=torch.bool, device=dev)
        for i, (n, layers, groups, any_gp) in enumerate(self.steps):
            real = batch.reals[:n, i if self.draws.R > 1 else 0]  # (n, L, ...)
            fake, lat = batch.fake[:n], self.lat[:n]
            is_real, is_fake, gp = self.is_real[:n], self.is_fake[:n], self.gp[:n]
            both = torch.cat([real, fake], 1)  # (n, 2L, ...)
            rows = both.flatten(0, 1).index_select(0, self.order[: n * 2 * L]).view(both.shape)
            tail = L if any_gp else 0
            if any_gp:  # the penalty's mixes ride along: one forward reads the weights once
                e = batch.eps[:n, i].view(n, L, *[1] * (fake.ndim - 2))
                mixed = e * real + (1 - e) * fake  # (n, L, ...)
                rows = torch.cat([rows, mixed], 1)
            B = rows.shape[1]
            out, trace = batched.forward(rows.reshape(n, -1, rows.shape[-1]), layers)
            p = out.view(n, B)[:, : 2 * L]  # logits of the reals and fakes
            l_r, l_f, seed = _losses(p, is_real, is_fake, self.bce[:n], lat)
            seed = seed.unsqueeze(-1)  # (n, 2L, 1)
            if any_gp:  # the mixes' rows: d D / d x
                seed = torch.cat([seed, seed.new_ones(n, L, 1)], 1)
            deltas, g = batched.backward(seed, layers, trace, tail)
            pen, u = torch.zeros_like(l_r), None
            if g is not None:
                pen, u = _penalty(g.view(mixed.shape), gp, self.valid[:n], lat)
                u = u.reshape(n, -1, trace.inputs[0].shape[-1])
            batched.weight_grads(layers, trace, deltas, B, tail, u)
            for grad, k in zip(self.unit_biases, self.unit_layers, strict=True):
                self.bias_grad(grad, deltas[k].view(n, B, -1), groups)
            self.opt.step(range(n))
            says_real = p > 0  # as solo.train counts: a NaN logit says "fake"
            correct[:n] += ((is_real & says_real) | (is_fake & ~says_real)).sum(1)
            new = torch.stack([l_r, l_f, pen], 1)
            terms[:n] = new
            bad[:n] |= ~torch.isfinite(new)
        return torch.cat([correct[:, None].to(terms.dtype), terms, bad.to(terms.dtype)], 1)

    def keep(self, rows: list[int]) -> None:
        """Re-stack with only ``rows`` (trials that leave no longer cost compute)."""
        self.stack.select(rows)
        self.opt.select(rows, self.stack.leaves(), list(self.stack.grad.values()))
        self.ids = [self.ids[r] for r in rows]
        self.cfgs = [self.cfgs[r] for r in rows]
        self.gens = [self.gens[r] for r in rows]
        self._rows()

    def state(self, row: int) -> dict[str, Any]:
        """Row's critic and optimiser state, as ``solo.train`` saves them (CPU copies)."""
        return {
            "disc_state": self.stack.state_dict(row),
            "disc_opt_state": self.opt.state_dict(row, self.stack),
        }


def _losses(
    p: torch.Tensor,
    is_real: torch.Tensor,
    is_fake: torch.Tensor,
    bce: torch.Tensor,
    lat: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per trial ``loss_real``, ``loss_fake`` ``[n]`` of the logits ``p [n, 2L]`` (WGAN
    or BCE, means over the trial's own samples, as ``critic_steps``), and their sum's
    gradient with respect to ``p``, computed as autograd's backward of these expressions
    computes it (``softplus_backward``; ``-1/lat``, ``1/lat``), without its engine: two
    autograd calls a step cost more than a small critic's matmuls."""
    l_r = torch.where(is_real, torch.where(bce, F.softplus(-p), -p), 0).sum(1) / lat
    l_f = torch.where(is_fake, torch.where(bce, F.softplus(p), p), 0).sum(1) / lat
    inv = (1 / lat)[:, None].expand_as(p)
    softplus_grad = torch.ops.aten.softplus_backward
    d_r = torch.where(bce, -softplus_grad(inv, -p, 1, 20), -inv)
    d_f = torch.where(bce, softplus_grad(inv, p, 1, 20), inv)
    seed = torch.where(is_real, d_r, 0) + torch.where(is_fake, d_f, 0)
    return l_r, l_f, seed


def _penalty(
    g: torch.Tensor, gp: torch.Tensor, valid: torch.Tensor, lat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw penalty ``[n]`` (mean of ``(||g|| - 1)^2`` over the trial's own mixes; 0
    where ``gp`` is 0) of the input gradients ``g [n, L, ...]``, and the gradient of
    ``gp * penalty`` with respect to ``g``, in autograd's order of operations (the
    norm's backward is 0 where the norm is 0)."""
    norm = g.flatten(2).norm(dim=2)  # (n, L)
    sq = (norm - 1) ** 2
    pen = torch.where(gp > 0, torch.where(valid, sq, 0).sum(1) / lat, 0)
    w = torch.where(gp > 0, gp, 0) / lat  # d (gp * pen) / d sum
    scale = torch.where(valid, w[:, None], 0) * (2 * (norm - 1))
    scale = (scale / norm).masked_fill_(norm == 0, 0)
    return pen, g * scale.view(*scale.shape, *[1] * (g.ndim - 2))


def train_packed(cfgs: list[SDConfig], runs: list[Run]) -> list[BaseException | None]:
    """Train ``cfgs`` as one batched model, each trial logging and saving to its ``run``.

    Each trial's logged metrics (same keys and steps as ``solo.train``) and saved state
    equal the trial trained alone, within float tolerance. A trial's ``run.should_stop()``
    is asked at its log steps; a stopped trial is saved there and leaves the pack.

    Returns and raises as ``check_pack`` and ``Kernel.train_packed`` (``_base.py``) say.
    """
    check_pack(cfgs, runs, pack_key)
    if not cfgs:
        return []
    c0 = cfgs[0]
    x = train_inputs(c0, resolve_device(c0.device))  # (N, in), as solo.train
    pack = _Pack(list(cfgs), library(c0.fun_lib), x)
    outcome: list[BaseException | None] = [None] * len(cfgs)
    tot_accs: list[list[float]] = [[] for _ in cfgs]
    times: list[float] = []
    pending: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for epoch in range(c0.epochs):
        pending.append(pack.epoch(pack.draws.next()))
        times.append(time.perf_counter() - t0)
        last = epoch == c0.epochs - 1 or (c0.runtime is not None and times[-1] > c0.runtime)
        if epoch % c0.log_freq != 0 and not last:
            continue
        records = torch.stack(pending).cpu().tolist()  # one host sync per log: (E, T, 7)
        pending.clear()
        first, stay = epoch - len(records) + 1, []
        for row, (t, cfg) in enumerate(zip(pack.ids, pack.cfgs, strict=True)):
            state = functools.partial(_state, pack, row, tot_accs[t], times)
            try:
                if _log(cfg, runs[t], [r[row] for r in records], first, tot_accs[t], times, last):
                    stay.append(row)
                    runs[t].checkpoint(state, epoch)
                    continue
                runs[t].save(state(), epoch)
            except Exception as e:  # this trial failed (its loss, or its run's I/O): it alone
                outcome[t] = e
        if not stay:
            break
        if len(stay) < len(pack.ids):
            pack.keep(stay)
    return outcome


def _state(pack: _Pack, row: int, tot_accs: list[float], times: list[float]) -> dict[str, Any]:
    """A row's trial as ``solo.train`` saves it (``model.saved_state``), to resume alone."""
    s = pack.state(row)
    return saved_state(
        pack.cfgs[row],
        s["disc_state"],
        s["disc_opt_state"],
        pack.gens[row],
        tot_accs,
        times[: len(tot_accs)],
    )


def _log(
    cfg: SDConfig,
    run: Run,
    records: list[list[float]],
    first: int,
    tot_accs: list[float],
    times: list[float],
    last: bool,
) -> bool:
    """Check and log one trial's epochs since its last log, as ``solo.train`` does; True
    while it goes on training.

    Raises:
        KernelFailed: a loss term was non-finite in one of these epochs.
    """
    log_epochs(cfg, run, records, first, tot_accs, times[first + len(records) - 1])
    return not (last or run.should_stop())
