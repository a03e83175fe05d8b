"""The SRNet regressor of seed 003 and its sparse-Jacobian (DSN) half.

An SRNet maps inputs to a few latent features (``layers1``) and the latents to the
target (``layers2``). Either half is a plain ReLU MLP or a DSN: one small MLP per
output, each seeing the input through its own mask row ``norm(alpha)``, so a zero in
the mask means that output cannot depend on that input at all. Both halves return
their per-sample Jacobian by carrying d h / d x forward layer by layer, which is exact,
costs one pass, and stays differentiable in the weights (the SD term can use it).

Facts (layout, tuple rule, DSN init and alpha options): ``../shared/reference/symrep.md``
section 3.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from srsweep.kernels.common.nets import mlp_apply

__all__ = ["Alpha", "DSN", "MLP", "SRNet", "Half"]

# None: randn, trainable; -1: randn, frozen; rows: these values, frozen
Alpha = int | tuple[tuple[float, ...], ...] | None
Norm = Literal["identity", "softmax"]
Jac = torch.Tensor | None


class MLP(nn.Module):
    """``hid_num`` x [Linear(hid_size), ReLU], then Linear(n_out); PyTorch's default init
    (U(+-1/sqrt(fan_in)) for weights and biases), as the original SRNet used."""

    def __init__(self, n_in: int, n_out: int, hid_num: int, hid_size: int) -> None:
        super().__init__()
        sizes = [n_in] + [hid_size] * hid_num + [n_out]
        self.layers = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, x: torch.Tensor, jacobian: bool = False) -> tuple[torch.Tensor, Jac]:
        """``x [B, n_in]`` -> ``(out [B, n_out], d out / d x [B, n_out, n_in] or None)``."""
        params = [(lin.weight, lin.bias) for lin in self.layers]
        return mlp_apply(params, x, jacobian)  # type: ignore[arg-type]


class DSN(nn.Module):
    """Independent per-output MLPs stored as batched 3-D weights, each behind a mask row.

    Args:
        n_in: input features.
        n_out: outputs, one MLP each.
        hid_num: hidden ReLU layers per output MLP (0: a masked linear map).
        hid_size: their width.
        alpha: the mask logits ``[n_out, n_in]``: None draws them from N(0,1) and trains
            them; -1 draws them and keeps them fixed; given rows are used as they are,
            fixed (e.g. ``((1, 0), (0, 1), (1, 1))`` for F07's three latents).
        norm: ``"identity"`` uses alpha as the mask; ``"softmax"`` uses softmax(|alpha|)
            over the inputs, so every mask row sums to one.
        prune: mask entries with |m| below this become exactly 0 (None: keep all).
    """

    alpha: torch.Tensor

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hid_num: int,
        hid_size: int,
        alpha: Alpha = None,
        norm: Norm = "identity",
        prune: float | None = None,
    ) -> None:
        super().__init__()
        if alpha is None:
            self.alpha = nn.Parameter(torch.randn(n_out, n_in))
        elif isinstance(alpha, int):
            self.register_buffer("alpha", torch.randn(n_out, n_in))
        else:
            self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))
        self.norm, self.prune = norm, prune
        sizes = [n_in] + [hid_size] * hid_num + [1]
        # N(0,1) * sqrt(6 / (fan_in + fan_out)) weights and zero biases (section 3): the
        # zero biases put every ReLU kink of an untrained DSN at x = 0.
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(n_out, i, o) * math.sqrt(6 / (i + o)))
            for i, o in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n_out, 1, o)) for o in sizes[1:])

    def mask(self) -> torch.Tensor:
        """The effective input mask ``[n_out, n_in]`` after ``norm`` and ``prune``."""
        m = F.softmax(self.alpha.abs(), dim=1) if self.norm == "softmax" else self.alpha
        if self.prune is not None:
            m = m * (m.abs() >= self.prune)
        return m

    def forward(self, x: torch.Tensor, jacobian: bool = False) -> tuple[torch.Tensor, Jac]:
        """``x [B, n_in]`` -> ``(out [B, n_out], d out / d x [B, n_out, n_in] or None)``."""
        m = self.mask()
        h = x.unsqueeze(0) * m.unsqueeze(1)  # (o, B, in): each output's own masked copy
        jac = torch.diag_embed(m).unsqueeze(1) if jacobian else None  # (o, 1, in, in)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)  # (o, B, width)
            if jac is not None:
                jac = torch.matmul(w.transpose(1, 2).unsqueeze(1), jac)  # (o, B|1, width, in)
            if k < last:
                if jac is not None:
                    jac = jac * (h > 0).unsqueeze(-1)  # ReLU'(0) = 0, as autograd takes it
                h = torch.relu(h)
        out = h.squeeze(-1).T  # (B, o)
        if jac is not None:
            jac = jac.squeeze(2).expand(-1, x.shape[0], -1).transpose(0, 1)  # (B, o, in)
        return out, jac

    def entropy(self) -> torch.Tensor:
        """Per output, the entropy in bits of its mask row taken as a distribution,
        p = |m| / sum |m| (with 0 log 0 = 0): 0 for a one-hot row, log2(n_in) for a
        uniform one. ``[n_out]``."""
        a = self.mask().abs()
        p = a / a.sum(1, keepdim=True).clamp_min(1e-12)
        return -(p * torch.log2(p.clamp_min(1e-12))).sum(1)


Half = MLP | DSN


class SRNet(nn.Module):
    """input -> ``layers1`` -> latents ``[B, lat_size]`` -> ``layers2`` -> prediction.

    Each argument that may differ between the halves is a (layers1, layers2) pair here;
    the config resolves the tuple rule (a scalar applies to both) before building.
    ``layers1`` is built first, so one torch seed gives one network.
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        lat_size: int,
        hid_num: tuple[int, int],
        hid_size: tuple[int, int],
        hid_type: tuple[str, str],
        alpha: tuple[Alpha, Alpha] = (None, None),
        norm: tuple[Norm, Norm] = ("identity", "identity"),
        prune: tuple[float | None, float | None] = (None, None),
    ) -> None:
        super().__init__()
        ends = ((in_size, lat_size), (lat_size, out_size))
        halves: list[Half] = []
        for i, (n_in, n_out) in enumerate(ends):
            if hid_type[i] == "DSN":
                halves.append(
                    DSN(n_in, n_out, hid_num[i], hid_size[i], alpha[i], norm[i], prune[i])
                )
            else:
                halves.append(MLP(n_in, n_out, hid_num[i], hid_size[i]))
        self.layers1, self.layers2 = halves

    def forward(
        self, x: torch.Tensor, jacobian: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, Jac]:
        """``x [B, in]`` -> ``(pred [B, out], latents [B, lat], d lat / d x [B, lat, in]
        when asked for, else None)``."""
        lat, jac = self.layers1(x, jacobian)
        pred, _ = self.layers2(lat)
        return pred, lat, jac

    def dsn_halves(self) -> list[DSN]:
        """The halves that have an input mask (for the a1, a2 and e1 penalties)."""
        return [h for h in (self.layers1, self.layers2) if isinstance(h, DSN)]
