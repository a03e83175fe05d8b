"""Many small same-shaped networks trained as one: stacked parameters, batched matmuls and
an Adam with per-trial hyperparameters.

Packed kernels (``sd_pack``; ``lazy`` and ``stn`` could reuse this) keep the parameters
of T trials as tensors ``[T, ...]``, one per parameter of a template module. A stacked
Linear is one ``baddbmm`` for all trials: on tiny networks a step costs launch and Python
overhead, which this pays once instead of T times (``../shared/reference/kernels.md``
section 4). Linear weights are stored transposed, ``[T, in, out]``, so that ``baddbmm``
reads them as they lie and their gradients come out contiguous.

The backward pass is written out (``forward``, ``backward``, ``weight_grads``) rather
than recorded by autograd. A WGAN-GP critic step differentiates the loss and the
gradient penalty, itself a gradient: autograd's double backward built and walked a graph
of ~20 nodes per layer (custom Functions, ~30 us of Python each) and read or wrote every
weight-sized tensor 7 times. Written out, one chain of products carries the loss's
deltas and the penalty's input gradient together, and each weight gradient is the loss's
matmul plus the penalty's, added in place as autograd adds them (one matmul over all rows
was no faster, and its rounding let WGAN runs drift from their solo twins sooner): 5
passes, no graph. On 2 CPU cores this took the seed study's packed trials from 1.0x to
~1.5x the same trials run one by one.

Why Adam is not tensor algebra over ``[T, ...]``: with per-trial lr/betas/weight decay
as ``[T, 1]`` tensors it takes ~14 elementwise passes over every parameter, measured 5-10x
slower on 2 CPU cores than torch's fused kernel (16 x 50k params: 8.3 vs 1.5 ms; 4 x 2.2M:
72 vs 8.7 ms). ``StackedAdam`` calls torch's own fused kernel (``torch._fused_adam_``, what
``torch.optim.Adam(fused=True)`` runs after counting the steps) on per-trial row views,
once per group of trials sharing hyperparameters: per-trial lr, betas, weight decay and
step counts come from the grouping, and a trial left out of a step keeps its parameters,
moments and step count exactly. It counts the steps of all trials in one op and calls
the kernel directly: ``torch.optim.adam.adam`` regroups the tensors by device and dtype
on every call, a third of a small pack's optimiser time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import torch
from torch import nn

from srsweep.kernels.common.optim import adam_param_group

__all__ = ["Layer", "Stack", "StackedAdam", "Trace", "backward", "forward", "weight_grads"]


class Layer(NamedTuple):
    """One stacked Linear of T trials, with its gradient buffers (views of the stack's)."""

    w: torch.Tensor  # W^T [T, in, out]: baddbmm reads it as it lies
    b: torch.Tensor  # [T, out]
    dw: torch.Tensor  # gradients, same shapes, written by ``weight_grads``
    db: torch.Tensor
    relu: bool  # a ReLU follows (every layer of a Sequential but its last)


class Trace(NamedTuple):
    """What ``backward`` and ``weight_grads`` need from ``forward``."""

    inputs: list[torch.Tensor]  # each layer's input [T, rows, in]
    masks: list[torch.Tensor | None]  # where each layer's ReLU gives 0 (z <= 0); None: no ReLU


class Stack:
    """The parameters of T copies of ``template`` and their gradient buffers.

    Nothing here records an autograd graph: ``forward``, ``backward`` and
    ``weight_grads`` compute what autograd would, into ``grad``.

    Args:
        template: gives names, shapes and layer structure only (``meta`` is fine).
        n: number of trials T.
        device: where the stacked tensors live.
    """

    def __init__(self, template: nn.Module, n: int, device: torch.device | str) -> None:
        self.template = template
        linear = {
            f"{m}.weight" for m, mod in template.named_modules() if isinstance(mod, nn.Linear)
        }
        self.transposed = {name for name, _ in template.named_parameters() if name in linear}
        self.params = {}
        for name, p in template.named_parameters():
            shape = p.shape[::-1] if name in self.transposed else p.shape
            self.params[name] = torch.zeros(n, *shape, dtype=p.dtype, device=device)
        self._grads()

    def _grads(self) -> None:
        # kept tensors, so an optimiser can make its per-trial views once
        self.grad = {name: torch.zeros_like(p) for name, p in self.params.items()}

    def leaves(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def load(self, t: int, state: dict[str, torch.Tensor]) -> None:
        """Set trial ``t``'s parameters from a state dict of ``template``'s layout."""
        for name, p in self.params.items():
            p[t].copy_(self.relayout(name, state[name]))

    def relayout(self, name: str, row: torch.Tensor) -> torch.Tensor:
        """One trial's tensor for parameter ``name``, from the stacked layout to the
        module's or back (a transpose, its own inverse, or nothing)."""
        return row.T if name in self.transposed else row

    def state_dict(self, t: int) -> dict[str, torch.Tensor]:
        """Trial ``t``'s parameters as ``template.state_dict()`` would hold them (CPU)."""
        return {
            name: self.relayout(name, p[t]).cpu().clone(memory_format=torch.contiguous_format)
            for name, p in self.params.items()
        }

    def select(self, rows: Sequence[int]) -> None:
        """Keep only trials ``rows``, in that order (new tensors)."""
        idx = torch.as_tensor(list(rows), device=self.leaves()[0].device)
        self.params = {k: p.index_select(0, idx) for k, p in self.params.items()}
        self._grads()

    def sequential(self, prefix: str, rows: int | None = None) -> list[Layer]:
        """The stacked layers of the template's Linear/ReLU ``nn.Sequential`` called
        ``prefix``, for the first ``rows`` trials (views).

        Raises:
            ValueError: that Sequential is not Linear layers with one ReLU between each pair.
        """
        seq = self.template.get_submodule(prefix)
        assert isinstance(seq, nn.Sequential)
        kinds = [type(m) for m in seq]
        if kinds != [nn.Linear, nn.ReLU] * (len(kinds) // 2) + [nn.Linear]:
            names = [k.__name__ for k in kinds]
            raise ValueError(f"{prefix}: expected Linear layers with ReLU between, got {names}")
        p, g = self.params, self.grad
        out = []
        for i in range(0, len(kinds), 2):
            w, b = f"{prefix}.{i}.weight", f"{prefix}.{i}.bias"
            relu = i + 1 < len(kinds)
            out.append(Layer(p[w][:rows], p[b][:rows], g[w][:rows], g[b][:rows], relu))
        return out


def _fit(h: torch.Tensor, width: int) -> torch.Tensor:
    """``[T, rows, ...]`` as ``[T, rows', width]``: a per-point embedding's outputs
    ``[T, B * N, 1]`` are the next part's inputs ``[T, B, N]``, and back."""
    return h.reshape(h.shape[0], -1, width)


def forward(x: torch.Tensor, layers: Sequence[Layer]) -> tuple[torch.Tensor, Trace]:
    """T stacked ReLU MLPs run one after another (each layer's input is the previous
    output reshaped to its width): ``x [T, rows, in]`` -> ``[T, rows', out]``."""
    trace = Trace([], [])
    h = x
    for layer in layers:
        h = _fit(h, layer.w.shape[1])
        trace.inputs.append(h)
        h = torch.baddbmm(layer.b.unsqueeze(1), h, layer.w)
        off = None
        if layer.relu:
            off = h <= 0  # as autograd's ReLU backward tests it (a NaN passes its gradient)
            h = h.relu_()
        trace.masks.append(off)
    return h, trace


def backward(
    seed: torch.Tensor, layers: Sequence[Layer], trace: Trace, tail: int = 0
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Gradients of the outputs' weighted sum (weights ``seed``, shaped as ``forward``'s
    output) with respect to every layer's pre-activation, last layer first computed but
    returned in layer order; and, for the last ``tail`` of the samples (0: none), with
    respect to the inputs.

    A gradient penalty rides along: seed its samples (appended as the last rows) with
    ones, and the same chain of products gives the critic's input gradient there, the
    vector the penalty is taken of, while the other rows carry the loss's gradients.
    """
    K = len(layers)
    deltas: list[torch.Tensor] = [seed] * K
    e = seed
    for k in range(K - 1, 0, -1):
        e = _fit(torch.bmm(e, layers[k].w.transpose(1, 2)), layers[k - 1].w.shape[2])
        off = trace.masks[k - 1]
        if off is not None:  # ReLU's backward, as autograd's: exact zeros where z <= 0
            e = e.masked_fill_(off, 0)
        deltas[k - 1] = e
    if not tail:
        return deltas, None
    rows = tail * (deltas[0].shape[1] // seed.shape[1])
    return deltas, torch.bmm(deltas[0][:, -rows:], layers[0].w.transpose(1, 2))


def weight_grads(
    layers: Sequence[Layer],
    trace: Trace,
    deltas: list[torch.Tensor],
    samples: int,
    tail: int = 0,
    u: torch.Tensor | None = None,
) -> None:
    """Fill every layer's ``dw`` and ``db`` from ``backward``'s ``deltas``.

    The first ``samples - tail`` samples are the loss's: they give ``dW = h^T delta``
    and ``db = sum(delta)``. With ``u``, the gradient of a penalty with respect to the
    input gradient ``backward`` returned for the last ``tail`` samples, the penalty's
    share is added: its double backward runs forward through the layers (the ReLU masks
    are constants: their second derivative is 0), pairing with the tail rows of
    ``deltas``.
    """
    lead = samples - tail
    for k, layer in enumerate(layers):
        h, d = trace.inputs[k], deltas[k]
        rows = lead * (d.shape[1] // samples)  # the loss's rows of d
        a = h[:, : lead * (h.shape[1] // samples)]
        # A transposed view, not a transposed copy: on torch 2.13's CPU bmm the view was
        # as fast or faster at these shapes, and the copy cost up to a third on top.
        torch.bmm(a.transpose(1, 2), d[:, :rows], out=layer.dw)
        if u is not None:  # the penalty's share added as autograd adds it (a + b)
            layer.dw.baddbmm_(u.transpose(1, 2), d[:, rows:])
        torch.sum(d[:, :rows], 1, out=layer.db)
        if u is not None and k + 1 < len(layers):
            u = torch.bmm(u, layer.w)
            off = trace.masks[k]
            if off is not None:
                u = u.masked_fill_(off[:, -u.shape[1] :], 0)
            u = _fit(u, layers[k + 1].w.shape[1])


class _AdamCall(NamedTuple):
    """One fused Adam call: a hyperparameter group's per-trial tensor rows."""

    hyper: tuple[float, tuple[float, float], float]  # lr, betas, weight decay
    params: list[torch.Tensor]
    grads: list[torch.Tensor]
    exp_avg: list[torch.Tensor]
    exp_avg_sq: list[torch.Tensor]
    steps: list[torch.Tensor]


class StackedAdam:
    """Adam (L2 weight decay added to the gradient, bias correction) over stacked params.

    Each trial has its own lr, betas, weight decay and step counts; ``step`` updates only
    the trials it is given. Moments live in tensors shaped like the parameters.

    Args:
        params: stacked tensors ``[T, ...]``, updated in place.
        grads: their gradients, kept tensors of the same shapes (refilled every step).
        lr, betas, weight_decay: one entry per trial.
        eps: Adam's epsilon (torch's default).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        lr: Sequence[float],
        betas: Sequence[tuple[float, float]],
        weight_decay: Sequence[float],
        eps: float = 1e-8,
    ) -> None:
        self.hyper = [
            (float(a), (float(b[0]), float(b[1])), float(w))
            for a, b, w in zip(lr, betas, weight_decay, strict=True)
        ]
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p).detach() for p in params]
        self.exp_avg_sq = [torch.zeros_like(p).detach() for p in params]
        # fused Adam keeps one float32 step per parameter tensor, on its device
        self.steps = torch.zeros(len(lr), len(params), device=params[0].device)
        self._tensors(params, grads)

    def _tensors(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        # per-trial rows of every state tensor: [p, grad, m, v, step] views per trial
        parts = [
            [p.detach().unbind(0) for p in params],
            [g.unbind(0) for g in grads],
            [m.unbind(0) for m in self.exp_avg],
            [v.unbind(0) for v in self.exp_avg_sq],
            [s.unbind(0) for s in self.steps.unbind(1)],
        ]
        self._rows = [[[x[t] for x in part] for part in parts] for t in range(len(self.hyper))]
        self._calls: dict[tuple[int, ...], tuple[slice | torch.Tensor, list[_AdamCall]]] = {}

    @torch.no_grad()
    def step(self, trials: Sequence[int]) -> None:
        """One Adam step for ``trials`` (row indices) with the current ``grads``; other
        rows, their moments and step counts stay exactly as they are."""
        key = tuple(trials)
        if key not in self._calls:  # the tensor lists per hyperparameter group, made once
            groups: dict[tuple[float, tuple[float, float], float], list[int]] = {}
            for t in key:
                groups.setdefault(self.hyper[t], []).append(t)
            prefix = key == tuple(range(len(key)))
            rows = slice(len(key)) if prefix else torch.tensor(key, device=self.steps.device)
            calls = [
                _AdamCall(
                    hyper, *([x for t in ts for x in self._rows[t][part]] for part in range(5))
                )
                for hyper, ts in groups.items()
            ]
            self._calls[key] = (rows, calls)
        rows, calls = self._calls[key]
        self.steps[rows] += 1  # torch.optim.adam's _fused_adam: steps first, then the kernel
        for (lr, (b1, b2), wd), p, g, m, v, s in calls:
            torch._fused_adam_(
                p,
                g,
                m,
                v,
                [],
                s,
                lr=lr,
                beta1=b1,
                beta2=b2,
                weight_decay=wd,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )

    def select(
        self, rows: Sequence[int], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """Keep only trials ``rows``, in that order; ``params`` and ``grads`` are the new
        stacked tensors (already selected by the caller)."""
        idx = torch.as_tensor(list(rows), device=self.steps.device)
        self.exp_avg = [m.index_select(0, idx) for m in self.exp_avg]
        self.exp_avg_sq = [v.index_select(0, idx) for v in self.exp_avg_sq]
        self.steps = self.steps.index_select(0, idx)
        self.hyper = [self.hyper[t] for t in rows]
        self._tensors(params, grads)

    def state_dict(self, t: int, stack: Stack | None = None) -> dict[str, Any]:
        """Trial ``t``'s state as ``torch.optim.Adam(fused=True).state_dict()`` holds it
        (CPU copies, moments in the module's layout when ``stack`` is given), so a packed
        trial's saved optimiser loads like a solo one's."""
        lr, betas, wd = self.hyper[t]
        names = list(stack.params) if stack is not None else [""] * len(self.exp_avg)

        def row(name: str, x: torch.Tensor) -> torch.Tensor:
            x = stack.relayout(name, x[t]) if stack is not None else x[t]
            return x.detach().cpu().clone(memory_format=torch.contiguous_format)

        state = {
            k: {
                "step": self.steps[t, k].detach().cpu().clone(),
                "exp_avg": row(name, self.exp_avg[k]),
                "exp_avg_sq": row(name, self.exp_avg_sq[k]),
            }
            for k, name in enumerate(names)
        }
        group = adam_param_group(len(self.exp_avg), lr, betas, wd, self.eps)
        return {"state": state, "param_groups": [group]}
