"""Per-epoch critic data for a pack of ``sd`` trials (seed 003): each trial's own random
draws, in ``model.make_batch``'s order on its own CPU generator, computed for all trials
at once.

A trial alone spends ~0.45 ms per epoch in ``make_batch`` (``random_mlp`` alone is
~80 us): fine once, but T times per epoch it would bound a pack. Here each trial only
makes its raw draws (one ``torch.rand`` for the generator weights, the library's
coefficient draws, the penalty's mixing weights), and the generator MLPs, their
Jacobians and the library functions are then evaluated for every trial in a few batched
calls. The draws and their arithmetic mirror ``nets.random_mlp``,
``FunctionLibrary.sample`` and ``nets.critic_steps``;
``tests/kernels/sd/test_sd_packed.py`` pins them to those helpers.

Trials differ in ``lat_size`` (L is the pack's largest) and ``disc.iters``; padded
samples are exactly zero and flagged in ``valid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from srsweep.kernels.common.nets import critic_input

if TYPE_CHECKING:
    from srsweep.kernels.common.funlib import FunctionLibrary
    from srsweep.kernels.sd.config import SDConfig

__all__ = ["EpochData", "PackDraws"]


@dataclass
class EpochData:
    """One epoch's critic inputs for the pack, on the training device.

    ``reals [T, R, L, ...]`` (R = the largest ``iters`` with ``iter_sample``, else 1),
    ``fake [T, L, ...]`` and the penalty's ``eps [T, I, L]`` (I = the largest ``iters``;
    zero where a trial draws none), with ``...`` as in ``model.make_batch``.
    """

    reals: torch.Tensor
    fake: torch.Tensor
    eps: torch.Tensor


class PackDraws:
    """Draws each epoch's data for trials ``cfgs`` (one pack) from their generators.

    Args:
        cfgs: the trials' configs; they share a ``pack_key``.
        gens: one CPU generator per trial, seeded as ``solo.train`` seeds it.
        lib: the pack's function library.
        x: the N training inputs ``[N, in]`` on the training device.
    """

    def __init__(
        self,
        cfgs: list[SDConfig],
        gens: list[torch.Generator],
        lib: FunctionLibrary,
        x: torch.Tensor,
    ) -> None:
        c0 = cfgs[0]
        self.cfgs, self.gens, self.lib, self.x = cfgs, gens, lib, x
        self.lat = [c.arch.lat_size for c in cfgs]
        self.iters = [c.disc.iters for c in cfgs]
        self.L, self.I = max(self.lat), max(self.iters)
        self.R = self.I if c0.iter_sample else 1
        self.groups = [  # trials by lat_size, for the computations that must not see padding
            (lat, torch.tensor([t for t, v in enumerate(self.lat) if v == lat], device=x.device))
            for lat in sorted(set(self.lat))
        ]
        self.pin = x.device.type == "cuda"  # stage draws in pinned memory: async copies
        a = c0.arch
        hidden = [a.hid_size] * a.hid_num[0]
        # Generator weights in random_mlp's draw layout, padded to L latents: for every
        # column of the padded layout, where it sits in trial t's draw (or a zero column)
        # and the layer's bound, so all trials' weights come out of one gather.
        self.shapes = list(zip(hidden + [self.L], [a.in_size] + hidden, strict=True))
        self.width = sum(o * i + o for o, i in self.shapes)
        index = torch.full((len(cfgs), self.width), self.width, dtype=torch.long)
        scale = torch.zeros(len(cfgs), self.width)
        self.totals = []
        for t, lat in enumerate(self.lat):
            at_pad = at_own = 0
            for k, (o, i) in enumerate(self.shapes):
                own = lat if k == len(self.shapes) - 1 else o  # this trial's rows
                for per_row in (i, 1):  # weight rows, then bias
                    n = own * per_row
                    index[t, at_pad : at_pad + n] = torch.arange(at_own, at_own + n)
                    scale[t, at_pad : at_pad + n] = i**-0.5
                    at_pad, at_own = at_pad + o * per_row, at_own + n
            self.totals.append(at_own)
        self.index, self.scale = index.to(x.device), scale.to(x.device)
        # Where trial t's library draw number p (of R_t * lat_t, iteration-major) lands in
        # the padded [T * R * L] sample layout; fixed per line unless lines are drawn.
        self.slots = []
        for t, lat in enumerate(self.lat):
            p = torch.arange(self._reals_of(t) * lat)
            self.slots.append(t * self.R * self.L + (p // lat) * self.L + p % lat)
        self.drawn = c0.shuffle and len(lib.lines) > 1
        self.fixed: dict[int, torch.Tensor] = {}
        if not self.drawn:
            per_line: dict[int, list[torch.Tensor]] = {}
            for t in range(len(cfgs)):
                for li, where in self._lines(t, None):
                    per_line.setdefault(li, []).append(
                        self.slots[t] if where is None else self.slots[t][where]
                    )
            self.fixed = {li: torch.cat(v).to(x.device) for li, v in per_line.items()}

    def _reals_of(self, t: int) -> int:
        return self.iters[t] if self.cfgs[t].iter_sample else 1

    def _lines(self, t: int, picks: torch.Tensor | None) -> list[tuple[int, torch.Tensor | None]]:
        """Trial t's library lines and which of its draws use each (None: all), in the
        order ``FunctionLibrary.sample`` draws their coefficients."""
        if len(self.lib.lines) == 1:
            return [(0, None)]
        if picks is None:  # no shuffle: the first lat lines, once per real batch
            picks = torch.arange(self.lat[t]).repeat(self._reals_of(t))
        lines = torch.unique(picks).tolist()
        if len(lines) == 1:
            return [(lines[0], None)]
        return [(li, (picks == li).nonzero().squeeze(1)) for li in lines]

    def _to_device(self, cpu: torch.Tensor) -> torch.Tensor:
        if self.pin and not cpu.is_pinned():
            cpu = cpu.pin_memory()
        return cpu.to(self.x.device, non_blocking=True)

    def next(self) -> EpochData:
        """Draw and compute one epoch for every trial, advancing each generator exactly as
        one epoch of ``solo.train`` does: ``make_batch``'s draws (generator weights, then
        library lines and coefficients), then one ``eps`` per critic step if gp > 0."""
        T, L = len(self.cfgs), self.L
        u = torch.zeros(T, self.width + 1, pin_memory=self.pin)  # last column: padding's 0
        eps = torch.zeros(T, self.I, L, pin_memory=self.pin)
        coefs: dict[int, list[torch.Tensor]] = {}
        slots: dict[int, list[torch.Tensor]] = {}
        for t, gen in enumerate(self.gens):
            lat, total = self.lat[t], self._reals_of(t) * self.lat[t]
            torch.rand(self.totals[t], generator=gen, out=u[t, : self.totals[t]])
            picks = None
            if self.drawn:
                picks = torch.randint(len(self.lib.lines), (total,), generator=gen)
            for li, where in self._lines(t, picks):
                n = total if where is None else len(where)
                draws = []
                for _ in range(self.lib.lines[li].n_coefs):  # N_c then U_c, as sample() does
                    draws += [torch.randn(n, generator=gen), torch.rand(n, generator=gen)]
                coefs.setdefault(li, []).append(
                    torch.stack(draws, 1) if draws else torch.zeros(n, 0)
                )
                if self.drawn:
                    slots.setdefault(li, []).append(
                        self.slots[t] if where is None else self.slots[t][where]
                    )
            if self.cfgs[t].disc.gp > 0:  # one draw of iters * lat = iters draws of lat
                it = self.iters[t]
                eps[t, :it, :lat] = torch.rand(it * lat, generator=gen).view(it, lat)
        # random_mlp's arithmetic, (u * 2 - 1) * bound, with bound 0 on the padding
        w_all = (self._to_device(u).gather(1, self.index) * 2 - 1) * self.scale
        fake, jac = self._generators(w_all)
        reals = self._library(coefs, slots)
        return EpochData(*self._assemble(reals, fake, jac), self._to_device(eps))

    def _generators(self, w_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents ``[T, N, L]`` and, with "grad", Jacobians ``[T, L, N, in]``."""
        T, x, L = len(self.cfgs), self.x, self.L
        n, c = x.shape
        h = x.expand(T, n, c)
        jt = None  # d h / d x by forward mode: (T, in * N, width), one block per input column
        if "grad" in self.cfgs[0].ext:
            eye = torch.eye(c, dtype=x.dtype, device=x.device)
            jt = eye.view(1, c, 1, c).expand(T, c, n, c).reshape(T, c * n, c)
        layers, at = [], 0
        for o, i in self.shapes:
            layers.append(
                (w_all[:, at : at + o * i].view(T, o, i), w_all[:, at + o * i : at + o * i + o])
            )
            at += o * i + o
        for w, b in layers[:-1]:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # (T, N, o)
            if (
                jt is not None
            ):  # a bmm, not make_batch's per-point matmuls: 100x faster, ~1 ulp apart
                jt = torch.bmm(jt, w.transpose(1, 2)) * (h > 0).repeat(1, c, 1)
            h = torch.relu(h)
        # The last layer per lat_size: a matmul's rounding depends on its width, so padded
        # widths would move the latents by an ulp from make_batch's.
        w, b = layers[-1]
        acts = h.new_zeros(T, n, L)
        jac = None if jt is None else h.new_zeros(T, c * n, L)
        for lat, idx in self.groups:
            wl = w.index_select(0, idx)[:, :lat].transpose(1, 2)
            bl = b.index_select(0, idx)[:, :lat].unsqueeze(1)
            acts[idx, :, :lat] = torch.baddbmm(bl, h.index_select(0, idx), wl)
            if jac is not None and jt is not None:
                jac[idx, :, :lat] = torch.bmm(jt.index_select(0, idx), wl)
        if jac is None:
            return acts, None
        return acts, jac.view(T, c, n, L).permute(0, 3, 2, 1)  # (T, L, N, in)

    def _library(
        self, coefs: dict[int, list[torch.Tensor]], slots: dict[int, list[torch.Tensor]]
    ) -> torch.Tensor:
        """Library samples ``[T, R, L, N, 1 + d]``, zero in padded slots."""
        T, x = len(self.cfgs), self.x
        fields = 1 + self.lib.n_derivs
        out = torch.zeros(T * self.R * self.L, x.shape[0], fields, dtype=x.dtype, device=x.device)
        for li, chunks in coefs.items():
            c = self._to_device(torch.cat(chunks)).to(x.dtype)
            vals = self.lib.lines[li].evaluate(x, c)  # (S, N, 1 + d), one call for all trials
            where = self.fixed[li] if not self.drawn else self._to_device(torch.cat(slots[li]))
            out.index_copy_(0, where, vals)
        return out.view(T, self.R, self.L, x.shape[0], fields)

    def _assemble(
        self, draws: torch.Tensor, acts: torch.Tensor, jac: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``make_batch``'s critic inputs from the raw samples."""
        cfg, x = self.cfgs[0], self.x
        T, R, L = len(self.cfgs), self.R, self.L
        fake_ext, real_ext = [], []
        for name in cfg.ext:
            if name == "input":
                fake_ext.append(x.expand(T, L, *x.shape))
                real_ext.append(x.expand(T, R, L, *x.shape))
            else:
                assert jac is not None
                fake_ext.append(jac)
                real_ext.append(draws[..., 1:])
        # Padded samples stay finite (zero values; x as an extra): the loss masks them out.
        fake = critic_input(acts.transpose(1, 2), fake_ext, cfg.ext_type)
        reals = critic_input(draws[..., 0], real_ext, cfg.ext_type)
        return reals, fake
