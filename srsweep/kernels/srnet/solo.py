"""The ``srnet`` kernel trained alone (seed 003, studies 173/184): full-batch Adam on the
SRNet's MSE plus its regularisers and the SD term, the co-trained critic (when there is
one) taking its ``disc.iters`` steps first in every epoch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any

import torch
import torch.nn.functional as F

from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import critic_steps
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.optim import Adam
from srsweep.kernels.srnet import shared
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.critic import Critic
from srsweep.kernels.srnet.critic import build_critic
from srsweep.kernels.srnet.critic import real_batch
from srsweep.kernels.srnet.dsn import SRNet

if TYPE_CHECKING:
    from srsweep.kernels._base import Run

__all__ = ["train"]


def _step(
    cfg: SRNetConfig,
    model: SRNet,
    opt: Adam,
    c: Critic | None,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """One epoch: critic steps (co-training), then one SRNet step. Returns the epoch's
    record (``shared.RECORD``) as a device tensor, without a host sync."""
    zero = x.new_zeros(())
    use_sd = c is not None and cfg.sd > 0
    opt.zero_grad(set_to_none=True)
    pred, lat, jac = model(x, jacobian=use_sd and "grad" in (c.ext if c else ()))
    ok, terms = zero, x.new_zeros(3)
    if c is not None and c.opt is not None:
        jac_d = None if jac is None else jac.detach()
        feats = shared.extras(c.ext, x, jac_d, lat.shape[1])
        fake = critic_input(lat.detach().T, feats, c.ext_type)
        c.net.requires_grad_(True)
        correct, terms, _ = critic_steps(
            c.net,
            c.opt,
            real_batch(cfg, c, x, gen),
            fake,
            iters=cfg.disc.iters,
            loss=cfg.disc.loss,
            gp=cfg.disc.gp,
            generator=gen,
        )
        c.net.requires_grad_(False)  # the SD term below must not train the critic
        ok = correct.to(zero.dtype)
    pred_loss = F.mse_loss(pred, y)
    loss = pred_loss + shared.regularisers(cfg, model, lat)
    l_sd, p_mean = zero, zero
    if use_sd and c is not None:
        feats = shared.extras(c.ext, x, jac, lat.shape[1])
        l_sd, p_mean = shared.sd_term(cfg, c.net, lat, feats, c.ext_type)
        loss = loss + l_sd
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    return torch.stack([loss, pred_loss, l_sd, p_mean, ok, *terms]).detach()


def train(cfg: SRNetConfig, run: Run) -> None:
    """Train the SRNet for ``cfg.epochs`` epochs (or until stopped) and save it.

    Raises:
        KernelFailed: a loss became NaN/inf, the fixed critic's file (``disc.from_run``,
            a path: ``from_run.resolve`` has run) is missing, not an sd run's, or its
            critic does not fit this SRNet, or CUDA was requested but is absent.
    """
    device = resolve_device(cfg.device)
    x, y, _ = shared.rows(cfg, "train", device)
    xv, yv, gv = shared.rows(cfg, "val", device)
    model = shared.build_model(cfg).to(device)
    opt = Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)  # fused; see optim.py
    c = build_critic(cfg, len(x), device)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU: the same draws on every device
    train_loss: list[float] = []
    logs: dict[str, list[Any]] = {
        k: [] for k in ("val_loss", "corr_mats", "disc_preds", "disc_loss", "times")
    }
    pending: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        pending.append(_step(cfg, model, opt, c, x, y, gen))
        elapsed = time.perf_counter() - t0
        last = epoch == cfg.epochs - 1 or (cfg.runtime is not None and elapsed > cfg.runtime)
        if epoch % cfg.log_freq != 0 and not last:
            continue
        records = torch.stack(pending).cpu().tolist()  # one host sync per log
        pending.clear()
        shared.check(records, epoch - len(records) + 1, cfg)
        train_loss += [r[0] for r in records]
        loss, pred_loss, l_sd, p_mean, ok, l_r, l_f, pen = records[-1]
        val_loss, corr = _evaluate(model, xv, yv, gv)
        row = {
            "epoch": epoch,
            "time": elapsed,
            "train_loss": loss,
            "pred_loss": pred_loss,
            "val_loss": val_loss,
            "min_corr": shared.min_corr(corr),
        }
        if c is not None and cfg.sd > 0:
            share = abs(l_sd) / max(abs(l_sd) + abs(pred_loss), 1e-30)
            row.update(disc_preds=p_mean, disc_loss=l_sd, sd_share=share)
        if c is not None and c.opt is not None:
            row.update(
                critic_acc=ok / (cfg.disc.iters * 2 * cfg.arch.lat_size),
                critic_loss=l_r + l_f + cfg.disc.gp * pen,
            )
        for key, value in zip(logs, (val_loss, corr, p_mean, l_sd, elapsed), strict=True):
            logs[key].append(value)
        run.log(row, step=epoch)
        if last or run.should_stop():
            break
    shared.save(cfg, run, model, opt, c, train_loss, logs, (x, y, xv, yv, gv))


@torch.no_grad()
def _evaluate(
    model: SRNet, xv: torch.Tensor, yv: torch.Tensor, gv: torch.Tensor
) -> tuple[float, Any]:
    """Validation MSE and the latent / true-latent correlation matrix (numpy)."""
    pred, lat, _ = model(xv)
    return F.mse_loss(pred, yv).item(), shared.correlations(lat, gv).cpu().numpy()
