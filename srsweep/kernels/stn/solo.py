"""``stn``'s solo path: one self-tuning net hypertrains its own training range x_range
on y = x² (seeds 000, 001).

A hypernetwork whose layers are affine in the perturbed, unconstrained hyperparameter
stands in for the best-response weights; cycles of weight steps (on the training range)
and hyper steps (on U(-val_range, val_range)) move t and its perturbation scale, until
the sup-norm distance to x² on a grid falls below a threshold. The package docstring
(``srsweep.kernels.stn``) cites the study and the reference this follows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from srsweep.kernels.common.nets import flatten_parameters
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.stn.hypernet import BLOCK
from srsweep.kernels.stn.hypernet import HyperNet
from srsweep.kernels.stn.hypernet import KerasAdam
from srsweep.kernels.stn.hypernet import draw
from srsweep.kernels.stn.hypernet import entropy
from srsweep.kernels.stn.hypernet import to_range
from srsweep.kernels.stn.hypernet import to_unc
from srsweep.kernels.stn.records import NAMES
from srsweep.kernels.stn.records import TRAJ
from srsweep.kernels.stn.records import failure
from srsweep.kernels.stn.records import metrics
from srsweep.kernels.stn.records import saved

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.stn.config import STNConfig

__all__ = ["train"]


def train(cfg: STNConfig, run: Run) -> None:
    """Hypertrain x_range until dist < ``dist_threshold``, ``max_cycles`` or a stop.

    Losses are summed over the batch, as the port's tapes differentiate per-sample
    vectors; the entropy bonus is subtracted from every sample, so it enters B times.

    Raises:
        KernelFailed: a loss or metric became NaN/inf, or CUDA was requested but absent.
    """
    # Threads: the agent runs a lone trial with one intra-op thread (SRSWEEP_THREADS); with
    # two on a busy 2-core box a (4, 100) @ (100, 4) product took ~8 ms instead of 8 us.
    _hypertrain(cfg, run, resolve_device(cfg.device))


def _hypertrain(cfg: STNConfig, run: Run, device: torch.device) -> None:
    dtype = getattr(torch, cfg.dtype)
    lo, hi, c, B = cfg.x_min, cfg.x_max, cfg.entropy_weight, cfg.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)  # the init and every draw; global RNG unused
    net = HyperNet(cfg.L, cfg.M, cfg.gate, gen).to(device=device, dtype=dtype)
    unc = nn.Parameter(to_unc(torch.tensor(cfg.init_x_range, dtype=dtype), lo, hi).to(device))
    s0 = math.log(math.expm1(cfg.init_scale))  # inverse softplus
    s = nn.Parameter(torch.tensor(s0, dtype=dtype, device=device))
    weights, grads = flatten_parameters(net)
    opt_w = KerasAdam(weights, cfg.train_lr, cfg.adam_eps)
    opt_h = KerasAdam(unc.data, cfg.hyper_lr, cfg.adam_eps)
    opt_s = KerasAdam(s.data, cfg.scale_lr, cfg.adam_eps)
    r = cfg.eval_range
    x_eval = torch.linspace(-r, r, cfg.eval_size, dtype=dtype, device=device).unsqueeze(1)  # (E, 1)
    y_eval = x_eval**2

    def weight_step(eps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the data depend on h, but only the weights get gradients
            h = unc + F.softplus(s) * eps  # (B, 1)
            x = to_range(h, lo, hi) * u
        loss: torch.Tensor = (net(x, h) - x**2).pow(2).sum()
        grads.zero_()
        loss.backward()  # type: ignore[no-untyped-call]
        opt_w.step(grads)
        return loss.detach()

    def hyper_loss(eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        se: torch.Tensor = (net(x, unc + F.softplus(s) * eps) - x**2).pow(2)  # (B, 1)
        return (se - c * entropy(s)).sum()

    def hyper_step(eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # Two tapes as the port: unc first, then s on the same ε and data with the
        # updated unc. The weights are frozen so no graph is kept for them.
        net.requires_grad_(False)
        opt_h.step(torch.autograd.grad(hyper_loss(eps, x), [unc])[0])
        loss = hyper_loss(eps, x)
        opt_s.step(torch.autograd.grad(loss, [s])[0])
        net.requires_grad_(True)
        return loss.detach()

    def noise(shape: tuple[int, ...], half: float) -> torch.Tensor:
        return draw(gen, shape, half).to(device=device, dtype=dtype)

    eps_last = torch.zeros(B, 1, dtype=dtype, device=device)
    if cfg.warmup_steps:
        eps_w, u_w = noise((cfg.warmup_steps, B, 1), 1.0)
        warm = torch.stack([weight_step(e, u) for e, u in zip(eps_w, u_w, strict=True)])
        if not bool(torch.isfinite(warm).all()):
            raise failure(cfg, "training loss", "during warm-up")
        eps_last = eps_w[-1]

    traj: dict[str, list[float]] = {k: [] for k in TRAJ}
    T, H = cfg.train_steps, cfg.hyper_steps
    hloss = torch.zeros((), dtype=dtype, device=device)
    converged, reason, f_eval, f_clean = False, "max_cycles", y_eval, y_eval
    for cycle in range(cfg.max_cycles):
        if cycle % BLOCK == 0:
            n = min(BLOCK, cfg.max_cycles - cycle)
            eps_w, u_w = noise((n, T, B, 1), 1.0)  # (cycles, steps, B, 1) each
            if H:
                eps_h, x_h = noise((n, H, B, 1), cfg.val_range)
        i = cycle % BLOCK
        for j in range(T):
            wloss = weight_step(eps_w[i, j], u_w[i, j])
        eps_last = eps_w[i, T - 1]
        for j in range(H):
            hloss = hyper_step(eps_h[i, j], x_h[i, j])
            eps_last = eps_h[i, j]
        with torch.no_grad():
            sp = F.softplus(s)
            # The port evaluates with the last perturbed h batch (its layers ignore
            # training=False), which only fits because EVAL_SIZE == BATCH_SIZE. With other
            # sizes the batch's mean h stands in for it.
            h_last = unc + sp * eps_last
            if cfg.eval_size != B:
                h_last = h_last.mean(0, keepdim=True)
            f_eval, f_clean = net(x_eval, h_last), net(x_eval, unc.view(1, 1))
            dists = [(f - y_eval).abs().max() for f in (f_eval, f_clean)]
            rec = torch.stack([to_range(unc, lo, hi), sp, wloss, hloss, *dists])
        # One host sync per cycle: the stop rule needs dist now.
        vals = dict(zip(NAMES, rec.tolist(), strict=True))
        bad = [k for k, v in vals.items() if not math.isfinite(v)]
        if bad:
            raise failure(cfg, ", ".join(bad), f"at cycle {cycle}")
        for key in traj:
            traj[key].append(vals[key])
        converged = vals["dist"] < cfg.dist_threshold
        last = converged or cycle == cfg.max_cycles - 1
        if cycle % cfg.log_every and not last:
            continue
        run.log(metrics(cfg, vals, converged, cycle), step=cycle)
        if converged:
            reason = "converged"
            break
        if run.should_stop():
            reason = "stopped"
            break
    pairs = (("x_eval", x_eval), ("f_eval", f_eval), ("f_eval_clean", f_clean))
    grid = {k: v.squeeze(1).cpu().numpy() for k, v in pairs}  # (E,) each
    model = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    run.save(saved(model, unc.item(), s.item(), traj, grid, converged, reason))
