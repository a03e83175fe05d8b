"""What ``stn``'s solo and packed paths both build on: the hypernetwork, Keras' Adam,
the map between x_range and its unconstrained value, the entropy bonus, and the noise
draws (seeds 000, 001; ``../shared/reference/kernels.md`` section (a)).

Both paths draw from one CPU generator per trial in the same order and block size, so a
packed trial sees exactly the numbers it would see alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BETAS",
    "BLOCK",
    "GATE_STD",
    "HyperDense",
    "HyperNet",
    "KerasAdam",
    "draw",
    "entropy",
    "to_range",
    "to_unc",
]

GATE_STD = 0.1  # the port's KERNEL_STDV: N(0, 0.1) init of the hyper gates kw, kb
BETAS = (0.9, 0.999)  # Adam's, in Keras and torch alike
BLOCK = 64  # cycles of noise drawn at once (one host->device copy per block)


def to_range(unc: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Unconstrained value -> x_range in (lo, hi), via a scaled sigmoid."""
    return (hi - lo) * torch.sigmoid(unc) + lo


def to_unc(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """x_range in (lo, hi) -> unconstrained value; the inverse of ``to_range``."""
    return torch.logit((t - lo) / (hi - lo))


def entropy(s: torch.Tensor) -> torch.Tensor:
    """Entropy of N(·, softplus(s)²): log(softplus(s)·√(2πe))."""
    return torch.log(F.softplus(s) * math.sqrt(2 * math.pi * math.e))


class HyperDense(nn.Module):
    """``y = x@W + b + (h@kw)·(x@HW) + (h@kb)·hb``, then ReLU when ``relu``.

    ``h`` is the (B, 1) batch of unconstrained, perturbed hyperparameter values (or a
    (1, 1) value shared by the batch). With ``gate="layer"`` kw, kb are [1, 1] (one
    scalar gate per layer, as the port); with ``"unit"`` they are [1, out].
    """

    def __init__(self, n_in: int, n_out: int, relu: bool, gate: str, gen: torch.Generator):
        super().__init__()
        bound, n_gate, f64 = 1.0 / math.sqrt(n_in), n_out if gate == "unit" else 1, torch.float64

        def uniform(*shape: int) -> nn.Parameter:  # in float64 (the port's) for any dtype
            return nn.Parameter((2 * torch.rand(shape, generator=gen, dtype=f64) - 1) * bound)

        def normal(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(shape, generator=gen, dtype=f64) * GATE_STD)

        # Drawn in the port's order: w, hw, kw, b, hb, kb.
        self.w, self.hw, self.kw = uniform(n_in, n_out), uniform(n_in, n_out), normal(1, n_gate)
        self.b, self.hb, self.kb = uniform(n_out), uniform(n_out), normal(1, n_gate)
        self.relu = relu

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # With one hyperparameter h@k is the outer product h*k: (B, 1) x (1, g) -> (B, g).
        y = torch.addcmul(torch.addmm(self.b, x, self.w), h * self.kw, x @ self.hw)  # (B, out)
        y = torch.addcmul(y, h * self.kb, self.hb)
        return torch.relu(y) if self.relu else y


class HyperNet(nn.Module):
    """The port's ``HyperReluNet``: 1 -> W linear, (L+1) x (W -> W) ReLU, W -> 1 linear,
    with W = M + 2 (d = 1), every layer a ``HyperDense``."""

    def __init__(self, L: int, M: int, gate: str, gen: torch.Generator) -> None:
        super().__init__()
        W = M + 2
        sizes = [(1, W, False)] + [(W, W, True)] * (L + 1) + [(W, 1, False)]
        self.layers = nn.ModuleList(HyperDense(i, o, r, gate, gen) for i, o, r in sizes)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, h)
        return x


class KerasAdam:
    """Adam on one tensor, in place, as Keras applies it (the port's optimiser): eps is
    added to √v before the bias correction, which is folded into the step size. torch's
    Adam adds eps after it; the two differ only when gradients are tiny."""

    def __init__(self, p: torch.Tensor, lr: float, eps: float) -> None:
        self.p, self.lr, self.eps, (self.b1, self.b2) = p, lr, eps, BETAS
        self.m, self.v, self.t = torch.zeros_like(p), torch.zeros_like(p), 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.lerp_(grad, 1 - self.b1)
        self.v.mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        lr_t = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        self.p.addcdiv_(self.m, self.v.sqrt().add_(self.eps), value=-lr_t)


def draw(gen: torch.Generator, shape: tuple[int, ...], half: float) -> torch.Tensor:
    """ε ~ N(0, 1) and u ~ U(-half, half) of ``shape`` each, stacked: (2, *shape). Drawn
    in float64 on CPU, so every dtype and device sees the same numbers."""
    eps = torch.randn(shape, generator=gen, dtype=torch.float64)
    u = (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1) * half
    return torch.stack([eps, u])
