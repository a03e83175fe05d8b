"""Networks and critic updates shared by the ``sd`` and ``srnet`` kernels.

- ``SDNet``: the symbolic-discriminator critic (reference section 4).
- ``random_mlp`` / ``mlp_apply``: an untrained ReLU MLP drawn straight from a
  ``torch.Generator`` and evaluated with its per-sample input Jacobian, the "fake"
  source of the SD study (section 3).
- ``critic_input`` / ``critic_steps``: build critic batches with extension features and
  run the critic's optimiser steps with WGAN or BCE loss and gradient penalty (section 5).
- ``resolve_device`` / ``flatten_parameters``: helpers every kernel's loop uses.

Facts: ``../shared/reference/symrep.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from srsweep.errors import KernelFailed

if TYPE_CHECKING:
    from srsweep.kernels.common.optim import Adam

__all__ = [
    "resolve_device",
    "flatten_parameters",
    "SDNet",
    "random_mlp",
    "mlp_apply",
    "critic_input",
    "gradient_penalty",
    "critic_steps",
]


def resolve_device(choice: str) -> torch.device:
    """A kernel's ``device`` key as a torch device: "auto" picks CUDA when present.

    Raises:
        KernelFailed: "cuda" was asked for on a machine without it.
    """
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise KernelFailed("device 'cuda' was requested but CUDA is not available here")
    return torch.device(choice)


def flatten_parameters(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Make ``module``'s parameters and gradients views of one flat value tensor and one
    flat gradient tensor (returned): backward accumulates into the flat gradient in place,
    and an optimiser step is a few whole-vector operations instead of a few per tensor."""
    params = list(module.parameters())
    values = torch.cat([p.detach().reshape(-1) for p in params])
    grads = torch.zeros_like(values)
    at = 0
    for p in params:
        n = p.numel()
        p.data, p.grad = values[at : at + n].view_as(p), grads[at : at + n].view_as(p)
        at += n
    return values, grads


def _mlp(in_size: int, hid_num: int, hid_size: int, out_size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(hid_num):
        layers += [nn.Linear(in_size, hid_size), nn.ReLU()]
        in_size = hid_size
    layers.append(nn.Linear(in_size, out_size))
    return nn.Sequential(*layers)


class SDNet(nn.Module):
    """The critic: one logit per function sample (a curve over all N input points).

    Module names follow the original (``layers1`` embedding, ``layers2`` critic) so its
    state dicts keep the same keys.

    Args:
        in_size: critic input width: N, or N * (1 + ext) when extras are stacked.
        hid_num: hidden layers; an int for both parts or (embedding, critic).
        hid_size: hidden width; an int for both parts or (embedding, critic).
        emb_size: channels per point for the shared per-point embedding MLP; ``None``
            or <= 1 turns the embedding off.
    """

    def __init__(
        self,
        in_size: int,
        hid_num: int | tuple[int, int] = 1,
        hid_size: int | tuple[int, int] = 100,
        emb_size: int | None = None,
    ) -> None:
        super().__init__()
        nums = hid_num if isinstance(hid_num, tuple) else (hid_num, hid_num)
        sizes = hid_size if isinstance(hid_size, tuple) else (hid_size, hid_size)
        self.layers1 = _mlp(emb_size, nums[0], sizes[0], 1) if emb_size and emb_size > 1 else None
        self.layers2 = _mlp(in_size, nums[1], sizes[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, emb]`` (embedding) or ``[B, in_size]`` -> logits ``[B]``."""
        if self.layers1 is not None:
            x = self.layers1(x).squeeze(-1)  # (B, N)
        logits: torch.Tensor = self.layers2(x).squeeze(-1)
        return logits


Params = list[tuple[torch.Tensor, torch.Tensor]]


def random_mlp(
    sizes: list[int], generator: torch.Generator, device: torch.device | str = "cpu"
) -> Params:
    """Weights of a freshly initialised ReLU MLP, e.g. ``sizes=[1, 32, 32, 5]``.

    Weights and biases are U(+-1/sqrt(fan_in)), PyTorch's ``nn.Linear`` default, drawn
    in one call on the generator's device (a CPU generator therefore gives the same
    network on every device) instead of building modules: cheap enough to do per epoch.

    Returns:
        ``[(W [out, in], b [out]), ...]`` on ``device``.
    """
    shapes = list(zip(sizes[1:], sizes[:-1], strict=True))
    total = sum(o * i + o for o, i in shapes)
    u = torch.rand(total, generator=generator, device=generator.device).to(device)
    u = u * 2 - 1
    params, at = [], 0
    for o, i in shapes:
        bound = i**-0.5
        w = u[at : at + o * i].view(o, i) * bound
        b = u[at + o * i : at + o * i + o] * bound
        params.append((w, b))
        at += o * i + o
    return params


def mlp_apply(
    params: Params, x: torch.Tensor, jacobian: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a ReLU MLP and, optionally, its per-sample Jacobian by forward mode.

    Args:
        params: from ``random_mlp``.
        x: inputs ``[N, in]``.
        jacobian: also return d out / d x.

    Returns:
        ``(out [N, out], jac [N, out, in] or None)``. ReLU's derivative at 0 is taken
        as 0, as autograd does.
    """
    jac = None
    if jacobian:  # d h / d x, carried layer by layer: (N, width, in)
        jac = torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
    h = x
    for k, (w, b) in enumerate(params):
        h = torch.addmm(b, h, w.T)
        if jac is not None:
            jac = torch.matmul(w, jac)  # (N, out, in)
        if k < len(params) - 1:
            if jac is not None:
                jac = jac * (h > 0).unsqueeze(-1)
            h = torch.relu(h)
    return h, jac


def critic_input(values: torch.Tensor, extras: list[torch.Tensor], ext_type: str) -> torch.Tensor:
    """Assemble critic inputs from samples and per-point extension features.

    Args:
        values: ``[..., B, N]`` function values.
        extras: tensors ``[..., B, N, c]`` (inputs x, or derivatives per input column).
        ext_type: ``"embed"`` -> ``[..., B, N, 1 + ext]``, value first; ``"stack"`` ->
            ``[..., B, N + N * ext]``, values then the extras flattened point-major.

    Returns:
        ``values`` unchanged when there are no extras.
    """
    if not extras:
        return values
    ext = torch.cat(extras, -1)  # (..., B, N, ext)
    if ext_type == "embed":
        return torch.cat([values.unsqueeze(-1), ext], -1)
    return torch.cat([values, ext.flatten(-2)], -1)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP term: mean over samples of (||dD/dx_hat|| - 1)^2 at random mixes.

    The first ``len(fake)`` real samples are paired with the fakes; ``eps`` holds one
    mixing weight per pair ``[B_fake]``; the norm runs over every non-batch dimension.
    The graph is kept so the penalty itself can be backpropagated.
    """
    e = eps.view(-1, *([1] * (fake.ndim - 1)))
    mixed = (e * real[: len(fake)] + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    penalty: torch.Tensor = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return penalty


def critic_steps(
    critic: nn.Module,
    opt: torch.optim.Optimizer | Adam,
    reals: torch.Tensor,
    fake: torch.Tensor,
    *,
    iters: int,
    loss: str,
    gp: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``iters`` optimiser steps of the critic against the same fake batch.

    Args:
        critic: maps ``[B, ...]`` to logits ``[B]``.
        opt: the critic's optimiser.
        reals: ``[R, B_real, ...]``; step i uses ``reals[i]`` when R = iters (a fresh
            draw per step) and ``reals[0]`` when R = 1.
        fake: ``[B_fake, ...]``, detached.
        iters: optimiser steps.
        loss: ``"wgan"`` (-mean D(real) + mean D(fake)) or ``"bce"`` (BCE with logits,
            real = 1, fake = 0, each term a mean).
        gp: gradient-penalty weight; 0 skips computing the penalty.
        generator: source of the penalty's mixing weights (any device).

    Returns:
        Device tensors, without a host sync: correct predictions summed over the steps
        (made before each step; logit > 0 means "real"), the last step's
        ``(loss_real, loss_fake, raw_gp)``, and per term whether any step was non-finite.
    """
    n_r = reals.shape[1]
    labels = torch.arange(n_r + len(fake), device=fake.device) < n_r  # True = real
    correct = torch.zeros((), dtype=torch.long, device=fake.device)
    bad = torch.zeros(3, dtype=torch.bool, device=fake.device)
    zero = torch.zeros((), dtype=fake.dtype, device=fake.device)
    terms = zero
    for i in range(iters):
        real = reals[i if len(reals) > 1 else 0]
        opt.zero_grad(set_to_none=True)
        p = critic(torch.cat([real, fake]))  # one pass for both halves: (B_real + B_fake)
        p_r, p_f = p[:n_r], p[n_r:]
        if loss == "wgan":
            l_r, l_f = -p_r.mean(), p_f.mean()
        else:  # BCE with logits against 1 and 0 is softplus(-p) and softplus(p)
            l_r, l_f = F.softplus(-p_r).mean(), F.softplus(p_f).mean()
        pen = zero
        if gp > 0:
            eps = torch.rand(len(fake), generator=generator, device=generator.device)
            pen = gradient_penalty(critic, real, fake, eps.to(fake.device, fake.dtype))
        (l_r + l_f + gp * pen).backward()
        opt.step()
        correct = correct + ((p.detach() > 0) == labels).sum()
        terms = torch.stack([l_r, l_f, pen]).detach()
        bad = bad | ~torch.isfinite(terms)
    return correct, terms, bad
