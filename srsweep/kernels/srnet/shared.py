"""What the ``srnet`` kernel's solo and packed trainers share: the SRNet built from a
config, the data rows, the loss terms, the epoch record and its check, and the saved
state, so that a packed trial logs and saves exactly what it would alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

import torch
import torch.nn.functional as F

from srsweep.errors import KernelFailed
from srsweep.kernels.common import data
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.saved import to_numpy
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.dsn import SRNet

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.common.nets import SDNet
    from srsweep.kernels.common.optim import Adam
    from srsweep.kernels.srnet.critic import Critic

__all__ = [
    "RECORD",
    "build_model",
    "rows",
    "extras",
    "sd_term",
    "regularisers",
    "correlations",
    "min_corr",
    "check",
    "save",
]


def build_model(cfg: SRNetConfig) -> SRNet:
    """The SRNet of ``cfg``, initialised from ``cfg.seed`` (global RNG left alone)."""
    p = cfg.pairs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return SRNet(
            cfg.n_in,
            cfg.arch.out_size,
            cfg.arch.lat_size,
            p["hid_num"],
            p["hid_size"],
            p["hid_type"],
            p["alpha"],
            p["norm"],
            p["prune"],
        )


def rows(cfg: SRNetConfig, split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(x, target, true latents) on one split's rows, float32, mask order."""
    idx = data.masks(cfg.in_var)[split]
    if split == "val" and len(idx) == 0:
        idx = data.masks(cfg.in_var)["train"]  # X11 has no mask: validate on every row
    arrays = (
        data.inputs(cfg.in_var)[:, : cfg.n_in],
        data.targets(cfg.target_var),
        data.targets(cfg.lat_var),
    )
    return tuple(torch.as_tensor(a[idx], dtype=torch.float32, device=device) for a in arrays)


def extras(ext: tuple[str, ...], x: torch.Tensor, jac: torch.Tensor | None, lat: int) -> list[Any]:
    """Per-point critic features of the latent curves: ``[lat, N, in]`` each."""
    out = []
    for name in ext:
        if name == "input":
            out.append(x.expand(lat, -1, -1))
        else:
            assert jac is not None
            out.append(jac.transpose(0, 1))
    return out


def sd_term(
    cfg: SRNetConfig, critic: SDNet, lat: torch.Tensor, feats: list[torch.Tensor], ext_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sd * mean phi(p), mean p)`` with p = critic(latents^T) ``[lat]``; gradients
    reach the generator through ``lat`` (and a Jacobian in the ``extras`` ``feats``)."""
    p = critic(critic_input(lat.T, feats, ext_type))
    if cfg.sd_fun == "linear":
        phi = -p
    elif cfg.sd_fun == "sigmoid":
        phi = torch.sigmoid(-p)
    else:
        phi = F.softplus(-p)  # -log sigmoid(p), computed stably
    return cfg.sd * phi.mean(), p.mean()


def regularisers(cfg: SRNetConfig, model: SRNet, lat: torch.Tensor) -> torch.Tensor:
    """The penalties that are on: ``l1`` on the latents ``[N, lat]``, and ``a1``/``a2``
    (mask sparsity) and ``e1`` (mask entropy) on each DSN half's mask."""
    reg = lat.new_zeros(())
    if cfg.l1 > 0:
        reg = reg + cfg.l1 * lat.abs().sum() / lat.shape[1]
    for half in model.dsn_halves():
        norms = half.alpha.abs().sum(1)  # ||alpha_o||_1 per output
        if cfg.a1 > 0 or cfg.a2 > 0:
            reg = reg + cfg.a1 * norms.sum() + cfg.a2 * norms.pow(2).sum().sqrt()
        if cfg.e1 > 0:
            reg = reg + cfg.e1 * half.entropy().pow(2).sum()
    return reg


def correlations(lat: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Pearson r of each learned latent with each true one ``[lat, n_true]``; a constant
    column correlates 0 with everything."""
    a, b = lat - lat.mean(0), true - true.mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    r: torch.Tensor = a.T @ b
    return r


# one row per epoch, kept on the device until the next log
RECORD = (
    "train_loss",
    "pred_loss",
    "disc_loss",
    "disc_preds",
    "critic_ok",
    "loss_real",
    "loss_fake",
    "gp",
)


def check(records: list[list[float]], first: int, cfg: SRNetConfig) -> None:
    """Fail the run at the first epoch (``first`` is ``records[0]``'s) whose ``RECORD``
    has a NaN/inf.

    Raises:
        KernelFailed: naming the epoch, the non-finite terms and the learning setup.
    """
    for e, rec in enumerate(records, first):
        broken = [n for n, v in zip(RECORD, rec, strict=True) if not math.isfinite(v)]
        if broken:
            raise KernelFailed(
                f"non-finite loss at epoch {e} ({', '.join(broken)} is NaN/inf; "
                f"lr={cfg.lr}, sd={cfg.sd}, sd_fun={cfg.sd_fun}, disc.lr={cfg.disc.lr})"
            )


def min_corr(corr: Any) -> float:
    """Min over learned latents of the max |r| against any true latent."""
    return float(abs(corr).max(1).min())


def save(
    cfg: SRNetConfig,
    run: Run,
    model: SRNet,
    opt: Adam,
    c: Critic | None,
    train_loss: list[float],
    logs: dict[str, list[Any]],
    split: tuple[torch.Tensor, ...],
) -> None:
    """Save a finished or stopped run's state to ``run``: the SRNet and its optimiser,
    the critic (and, co-trained, its optimiser), the per-epoch ``train_loss``, the
    per-log ``logs`` and the final correlations and latents on ``split`` = (x, y, xv,
    yv, gv)."""
    x, y, xv, yv, gv = split
    with torch.no_grad():
        total_train = F.mse_loss(model(x)[0], y).item()
        pred_v, lat_v, _ = model(xv)
        total_val = F.mse_loss(pred_v, yv).item()
    state: dict[str, Any] = {
        "model_state": model.state_dict(),
        "optimizer_state": opt.state_dict(),
        "train_loss": train_loss,  # per epoch; the rest per log
        **logs,
        # [lat, n_true] Pearson r on the validation rows at the end
        "corr_mat": correlations(lat_v, gv).cpu().numpy(),
        "total_train_loss": total_train,
        "total_val_loss": total_val,
        "val_latents": lat_v.cpu().numpy(),  # the report plots these against val_true
        "val_true": gv.cpu().numpy(),
        "in_var": cfg.in_var,
        "target_var": cfg.target_var,
        "lat_var": cfg.lat_var,
    }
    if c is not None:
        state["disc_state"] = c.net.state_dict()
        state["disc_fixed"] = c.opt is None
        if c.opt is not None:
            state.update(
                disc_opt_state=c.opt.state_dict(),
                fun_lib=cfg.fun_lib,
                disc_shuffle=cfg.shuffle,
                disc_iter_sample=cfg.iter_sample,
            )
        if c.saved_hyperparams is not None:  # the sd run's config, for a fixed critic
            state.update(disc_hyperparams=c.saved_hyperparams, disc_from_run=cfg.disc.from_run)
    run.save(to_numpy(state))  # as a model file holds it: arrays, not tensors
