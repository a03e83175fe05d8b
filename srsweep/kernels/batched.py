"""Many small same-shaped networks trained as one: stacked parameters, batched matmuls and
an Adam with per-trial hyperparameters.

Packed kernels (``sd_pack``; ``lazy`` and ``stn`` could reuse this) keep the parameters
of T trials as leaf tensors ``[T, ...]``, one per parameter of a template module. A
stacked Linear is one ``baddbmm`` for all trials: on tiny networks a step costs launch
and Python overhead, which this pays once instead of T times (``../shared/reference/
kernels.md`` section 4). Linear weights are stored transposed, ``[T, in, out]``, so that
``baddbmm`` reads them as they lie and autograd returns their gradients contiguous: with
``nn.Linear``'s ``[out, in]`` every gradient was a transposed view, and summing the
main-loss and penalty contributions over those strided views took a third of a step.

Why Adam is not tensor algebra over ``[T, ...]``: with per-trial lr/betas/weight decay
as ``[T, 1]`` tensors it takes ~14 elementwise passes over every parameter, measured 5-10x
slower on 2 CPU cores than torch's fused kernel (16 x 50k params: 8.3 vs 1.5 ms; 4 x 2.2M:
72 vs 8.7 ms). ``StackedAdam`` calls torch's own fused Adam (``torch.optim.adam.adam(...,
fused=True)``, the code of ``torch.optim.Adam(fused=True)``) on per-trial row views, once
per group of trials sharing hyperparameters: per-trial lr, betas, weight decay and step
counts come from the grouping, and a trial left out of a step keeps its parameters,
moments and step count exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.optim import adam as _adam

from srsweep.kernels.optim import adam_param_group

__all__ = ["Stack", "mlp", "input_grad", "StackedAdam"]

Layers = list[tuple[torch.Tensor, torch.Tensor, "_GradSink"]]


class _GradSink:
    """A stacked weight's gradient, summed in place from its contributions (the loss and
    the penalty): a fresh weight-sized tensor per contribution cost first-touch page
    faults that made these ``bmm`` calls 4x slower on CPU than writing into a kept one.
    ``baddbmm_`` adds as autograd would (``a + b``, bit for bit on CPU)."""

    def __init__(self, like: torch.Tensor) -> None:
        self.buf = torch.zeros_like(like, requires_grad=False)
        self.fresh = True

    def add_bmm(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Add ``bmm(a, b)`` to the first ``len(a)`` trials' rows (a step may run only a
        prefix of the stack; the other rows are left for the optimiser to skip)."""
        rows = self.buf[: a.shape[0]]
        if self.fresh:
            torch.bmm(a, b, out=rows)
            self.fresh = False
        else:
            rows.baddbmm_(a, b)

    def take(self) -> torch.Tensor:
        """The summed gradient (zeros if nothing came), and start over."""
        if self.fresh:
            self.buf.zero_()
        self.fresh = True
        return self.buf


class Stack:
    """The parameters of T copies of ``template``, as leaf tensors requiring grad.

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
            self.params[name] = torch.zeros(
                n, *shape, dtype=p.dtype, device=device, requires_grad=True
            )
        self._sinks()

    def _sinks(self) -> None:
        self.sinks = {name: _GradSink(self.params[name]) for name in self.transposed}
        # Gradients live in kept tensors (weights: their sinks), so an optimiser can make
        # its per-trial views once.
        self.grad = {
            name: self.sinks[name].buf if name in self.sinks else torch.zeros_like(p).detach()
            for name, p in self.params.items()
        }

    def leaves(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def collect(self, autograd_grads: Sequence[torch.Tensor | None]) -> None:
        """Gather every gradient into ``self.grad`` after a backward pass through ``mlp``
        and ``input_grad``, given ``autograd.grad(..., self.leaves(), allow_unused=True)``
        (which has None for the weights: their sinks hold them)."""
        for (name, buf), g in zip(self.grad.items(), autograd_grads, strict=True):
            if name in self.sinks:
                self.sinks[name].take()
            elif g is None:
                buf.zero_()
            else:
                buf.copy_(g)

    @torch.no_grad()
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
            name: self.relayout(name, p[t]).detach().cpu().contiguous().clone()
            for name, p in self.params.items()
        }

    def select(self, rows: Sequence[int]) -> None:
        """Keep only trials ``rows``, in that order (new leaf tensors)."""
        idx = torch.as_tensor(list(rows), device=self.leaves()[0].device)
        with torch.no_grad():
            self.params = {
                k: p.index_select(0, idx).requires_grad_(True) for k, p in self.params.items()
            }
        self._sinks()

    def sequential(self, prefix: str, rows: int | None = None) -> Layers:
        """Stacked ``(W^T [T, in, out], b [T, out], sink)`` of the template's Linear/ReLU
        ``nn.Sequential`` called ``prefix``, for the first ``rows`` trials (views).

        Raises:
            ValueError: that Sequential is not Linear layers with one ReLU between each pair.
        """
        seq = self.template.get_submodule(prefix)
        assert isinstance(seq, nn.Sequential)
        kinds = [type(m) for m in seq]
        if kinds != [nn.Linear, nn.ReLU] * (len(kinds) // 2) + [nn.Linear]:
            names = [k.__name__ for k in kinds]
            raise ValueError(f"{prefix}: expected Linear layers with ReLU between, got {names}")
        p = self.params
        return [
            (
                p[f"{prefix}.{i}.weight"][:rows],
                p[f"{prefix}.{i}.bias"][:rows],
                self.sinks[f"{prefix}.{i}.weight"],
            )
            for i in range(0, len(kinds), 2)
        ]


class _Linear(torch.autograd.Function):
    """``b + x W`` for stacked ``W [T, in, out]``; ``dW`` goes to the weight's sink.

    ``dW = x^T gy`` is computed from a contiguous ``x^T``: autograd's ``baddbmm``
    backward passes a transposed view, which MKL ran 3.5x slower.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, sink: _GradSink
    ) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.sink = sink
        return torch.baddbmm(b.unsqueeze(1), x, w)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        if need_w:
            ctx.sink.add_bmm(x.transpose(1, 2).contiguous(), gy)
        gx = torch.bmm(gy, w.transpose(1, 2)) if need_x else None
        return gx, None, gy.sum(1) if need_b else None, None


class _InputGrad(torch.autograd.Function):
    """``g W^T``, a stacked Linear's input gradient, as a differentiable op of ``g`` and
    ``W`` (a gradient penalty differentiates it); ``dW = u^T g`` goes to the sink in
    ``[T, in, out]`` layout, so it adds to the loss's contribution without a transpose."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, w: torch.Tensor, sink: _GradSink) -> torch.Tensor:
        ctx.save_for_backward(g, w)
        ctx.sink = sink
        return torch.bmm(g, w.transpose(1, 2))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, u: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g, w = ctx.saved_tensors
        need_g, need_w, _ = ctx.needs_input_grad
        if need_w:
            ctx.sink.add_bmm(u.transpose(1, 2).contiguous(), g)
        return torch.bmm(u, w) if need_g else None, None, None


def mlp(h: torch.Tensor, layers: Layers, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """T stacked ReLU MLPs: ``h [T, B, in]`` -> ``[T, B, out]``, no ReLU after the last.

    ``masks`` collects each hidden layer's ReLU mask ``h > 0`` (untracked), for
    ``input_grad`` at the same inputs.
    """
    for k, (w, b, sink) in enumerate(layers):
        h = _Linear.apply(h, w, b, sink)  # type: ignore[no-untyped-call]  # (T, B, out)
        if k < len(layers) - 1:
            h = torch.relu(h)
            if masks is not None:
                masks.append(h.detach() > 0)
    return h


def input_grad(masks: list[torch.Tensor], layers: Layers, g: torch.Tensor) -> torch.Tensor:
    """Vector-Jacobian product of ``mlp`` at the inputs that gave ``masks`` (rows of
    them, if ``g`` has fewer): ``g [T, B, out]`` -> ``[T, B, in]``, differentiable in
    the weights.

    This is what ``autograd.grad(..., create_graph=True)`` builds for a gradient penalty,
    without the forward graph it would also record and differentiate (the masks are
    constants: ReLU's second derivative is 0).
    """
    for k in range(len(layers) - 1, -1, -1):
        g = _InputGrad.apply(g, layers[k][0], layers[k][2])  # type: ignore[no-untyped-call]
        if k > 0:
            g = torch.where(masks[k - 1][:, -g.shape[1] :], g, 0)
    return g


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
        self._calls: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}

    @torch.no_grad()
    def step(self, trials: Sequence[int]) -> None:
        """One Adam step for ``trials`` (row indices) with the current ``grads``; other
        rows, their moments and step counts stay exactly as they are."""
        key = tuple(trials)
        if key not in self._calls:  # the tensor lists per hyperparameter group, made once
            groups: dict[tuple[float, tuple[float, float], float], list[int]] = {}
            for t in key:
                groups.setdefault(self.hyper[t], []).append(t)
            self._calls[key] = [
                (hyper, *([x for t in ts for x in self._rows[t][part]] for part in range(5)))
                for hyper, ts in groups.items()
            ]
        for (lr, (b1, b2), wd), p, g, m, v, s in self._calls[key]:
            _adam.adam(
                p,
                g,
                m,
                v,
                [],
                s,
                fused=True,
                amsgrad=False,
                beta1=b1,
                beta2=b2,
                lr=lr,
                weight_decay=wd,
                eps=self.eps,
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
            return x.detach().cpu().contiguous().clone()

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
