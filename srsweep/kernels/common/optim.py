"""Adam for the kernels without ``torch.optim.Optimizer``.

Constructing any ``torch.optim.Optimizer`` imports ``torch._dynamo`` (its methods are
wrapped by ``torch._disable_dynamo``, which imports it on first call): 2-3 s on these
CPUs, paid by every trial that runs in its own process (``srsweep run``, ``wandb
agent``), far more than a short trial's training. ``Adam`` here calls the same functional
kernel, ``torch.optim.adam.adam(..., fused=True)``, the code behind
``torch.optim.Adam(fused=True)``: same update bit for bit, and ``state_dict()`` in
``torch.optim.Adam``'s format so a saved optimiser state loads into either.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import adam as _adam

__all__ = ["Adam", "adam_param_group"]


def adam_param_group(
    n_params: int, lr: float, betas: tuple[float, float], weight_decay: float, eps: float
) -> dict[str, Any]:
    """``torch.optim.Adam(fused=True).state_dict()["param_groups"][0]`` for these
    hyperparameters, built from the constructor's own defaults (no Optimizer made)."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(torch.optim.Adam.__init__).parameters.items()
        if name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }
    chosen = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "eps": eps, "fused": True}
    return {**defaults, **chosen, "params": list(range(n_params))}


class Adam:
    """Adam with L2 weight decay (added to the gradient) and bias correction, one fused
    kernel per step, over ``params``; duck-types the parts of ``torch.optim.Adam`` the
    kernels use (``zero_grad``, ``step``, ``state_dict``, ``load_state_dict``)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.weight_decay, self.eps = lr, betas, weight_decay, eps
        self.exp_avg = [torch.zeros_like(p).detach() for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p).detach() for p in self.params]
        # fused Adam keeps one float32 step count per parameter, on its device
        self.steps = [torch.zeros((), device=p.device) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch's Adam skips
        parameters whose ``grad`` is None)."""
        live = [k for k, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        grads = [self.params[k].grad for k in live]
        _adam.adam(
            [self.params[k] for k in live],
            grads,  # type: ignore[arg-type]  # filtered to non-None above
            [self.exp_avg[k] for k in live],
            [self.exp_avg_sq[k] for k in live],
            [],
            [self.steps[k] for k in live],
            fused=True,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=self.weight_decay,
            eps=self.eps,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """As ``torch.optim.Adam.state_dict()``: per-parameter step and moments (only for
        parameters that have stepped), and the param group."""
        state = {
            k: {"step": s.clone(), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
            for k, (s, m, v) in enumerate(
                zip(self.steps, self.exp_avg, self.exp_avg_sq, strict=True)
            )
            if s.item() > 0
        }
        group = adam_param_group(len(self.params), self.lr, self.betas, self.weight_decay, self.eps)
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take up a ``state_dict()``'s step counts and moments (tensors on any device),
        to train on where it left off; the hyperparameters stay this optimiser's."""
        for k, s in state["state"].items():
            self.steps[k].copy_(s["step"])
            self.exp_avg[k].copy_(s["exp_avg"])
            self.exp_avg_sq[k].copy_(s["exp_avg_sq"])
