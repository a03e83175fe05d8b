"""``srnet``: an SRNet regressor whose latents a symbolic discriminator regularises
(seed 003, step 15.7 "use the trained SD to regularise a DSN"; studies 173 and 184).

An SRNet (``dsn.py``) learns X07 -> F07 through a few latent features, full batch
(the 700 training rows) with Adam on MSE. The latents should come out as the simple
functions G07 that F07 is the sum of; ``min_corr`` measures that on the validation
rows. A critic (the ``sd`` kernel's ``SDNet``) scores each latent curve over all 700
points as library-like or not, and ``sd * mean phi(D(latents^T))`` rewards the
generator for looking like library draws:

- **co-trained** (default, study 184): each epoch first takes ``disc.iters`` critic
  steps, library draws (F07_v2) as real against the detached latents as fake;
- **fixed** (study 173): ``disc.from_run`` names a finished ``sd`` run (run id or
  ``.joblib`` path); its critic and its ``ext``/``ext_type`` are used and never
  updated, and the ``disc.*`` keys here are ignored.

Regularisers ``l1``, ``a1``, ``a2``, ``e1`` are on when > 0. Left out of the
reference's set: ``e2``/``e3`` (experimental entropy terms) and ``gc`` (the SR3
"ghost" optimiser). Same-shaped trials pack (``srnet_pack.py``). Config and
``disc.from_run`` checks: ``srnet_config.py``. Facts:
``../shared/reference/symrep.md`` sections 2, 3, 5, 7-9.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import torch
import torch.nn.functional as F

from srsweep.errors import KernelFailed
from srsweep.errors import SrsweepError
from srsweep.kernels import srnet_pack
from srsweep.kernels._base import Kernel
from srsweep.kernels.common import data
from srsweep.kernels.common import funlib
from srsweep.kernels.common.nets import SDNet
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import critic_steps
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.optim import Adam
from srsweep.kernels.dsn import SRNet
from srsweep.kernels.srnet_config import ArchConfig
from srsweep.kernels.srnet_config import DiscConfig
from srsweep.kernels.srnet_config import HidKwargs
from srsweep.kernels.srnet_config import SRNetConfig
from srsweep.kernels.srnet_config import fixed_critic
from srsweep.kernels.srnet_config import load_critic_run
from srsweep.kernels.srnet_config import resolve_run

if TYPE_CHECKING:
    from srsweep.kernels._base import Run

__all__ = [
    "HidKwargs",
    "ArchConfig",
    "DiscConfig",
    "SRNetConfig",
    "KERNEL",
    "train",
    "build_model",
    "load_critic_run",
    "resolve_run",
    "sd_term",
]

# --- model, data and loss -----------------------------------------------------------


def build_model(cfg: SRNetConfig) -> SRNet:
    """The SRNet of ``cfg``, initialised from ``cfg.seed`` (global RNG left alone)."""
    p = cfg.pairs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return SRNet(cfg.n_in, cfg.arch.out_size, cfg.arch.lat_size, p["hid_num"],
                     p["hid_size"], p["hid_type"], p["alpha"], p["norm"], p["prune"])  # fmt: skip


def _make_critic(cfg: SRNetConfig, n: int) -> SDNet:
    c = len(cfg.ext) * cfg.n_in
    embed = cfg.ext_type == "embed"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)  # not the SRNet's stream
        return SDNet(n if embed else n * (1 + c), cfg.disc.hid_num, cfg.disc.hid_size,
                     emb_size=1 + c if embed else None)  # fmt: skip


def _rows(cfg: SRNetConfig, split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(x, target, true latents) on one split's rows, float32, mask order."""
    rows = data.masks(cfg.in_var)[split]
    if split == "val" and len(rows) == 0:
        rows = data.masks(cfg.in_var)["train"]  # X11 has no mask: validate on every row
    arrays = (data.inputs(cfg.in_var)[:, : cfg.n_in], data.targets(cfg.target_var),
              data.targets(cfg.lat_var))  # fmt: skip
    return tuple(torch.as_tensor(a[rows], dtype=torch.float32, device=device) for a in arrays)


def _extras(ext: tuple[str, ...], x: torch.Tensor, jac: torch.Tensor | None, lat: int) -> list[Any]:
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
    cfg: SRNetConfig, critic: SDNet, lat: torch.Tensor, extras: list[torch.Tensor], ext_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sd * mean phi(p), mean p)`` with p = critic(latents^T) ``[lat]``; gradients
    reach the generator through ``lat`` (and a Jacobian in ``extras``)."""
    p = critic(critic_input(lat.T, extras, ext_type))
    if cfg.sd_fun == "linear":
        phi = -p
    elif cfg.sd_fun == "sigmoid":
        phi = torch.sigmoid(-p)
    else:
        phi = F.softplus(-p)  # -log sigmoid(p), computed stably
    return cfg.sd * phi.mean(), p.mean()


def _regularisers(cfg: SRNetConfig, model: SRNet, lat: torch.Tensor) -> torch.Tensor:
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


def _correlations(lat: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Pearson r of each learned latent with each true one ``[lat, n_true]``; a constant
    column correlates 0 with everything."""
    a, b = lat - lat.mean(0), true - true.mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    r: torch.Tensor = a.T @ b
    return r


# --- training ------------------------------------------------------------------------

# one row per epoch, kept on the device until the next log
_RECORD = ("train_loss", "pred_loss", "disc_loss", "disc_preds", "critic_ok", "loss_real",
           "loss_fake", "gp")  # fmt: skip


@dataclass
class _Critic:
    """The critic side of a run: the network, and for co-training its optimiser and
    library; ``ext``/``ext_type`` are those of the saved run for a fixed critic."""

    net: SDNet
    ext: tuple[str, ...]
    ext_type: str
    opt: Adam | None = None
    lib: funlib.FunctionLibrary | None = None
    saved_hyperparams: dict[str, Any] | None = None


def _critic(cfg: SRNetConfig, n: int, device: torch.device) -> _Critic | None:
    if cfg.disc.from_run is not None:
        try:
            payload = load_critic_run(cfg.disc.from_run)
            net, ext, ext_type = fixed_critic(cfg, payload)
        except SrsweepError as e:  # the file changed since the config was checked
            raise KernelFailed(f"disc.from_run: {cfg.disc.from_run!r}: {e}") from None
        # never updated: no optimiser, and no gradients into its weights
        net = net.to(device).requires_grad_(False)
        return _Critic(net, ext, ext_type, saved_hyperparams=payload["hyperparams"])
    if cfg.sd == 0:
        return None
    net = _make_critic(cfg, n).to(device).requires_grad_(False)
    d = cfg.disc
    opt = Adam(net.parameters(), lr=d.lr, weight_decay=d.wd, betas=d.betas)
    return _Critic(net, cfg.ext, cfg.ext_type, opt, funlib.FunctionLibrary(cfg.fun_lib))


def _real_batch(
    cfg: SRNetConfig, c: _Critic, x: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Library draws at the training inputs as critic input ``[R, lat, ...]``."""
    assert c.lib is not None
    n_real = cfg.disc.iters if cfg.iter_sample else 1
    lat = cfg.arch.lat_size
    draws = c.lib.sample(lat, x, iter_num=n_real, shuffle=cfg.shuffle, generator=gen)
    extras = [x.expand(n_real, lat, -1, -1) if n == "input" else draws[..., 1:] for n in c.ext]
    return critic_input(draws[..., 0], extras, c.ext_type)


def _step(
    cfg: SRNetConfig,
    model: SRNet,
    opt: Adam,
    c: _Critic | None,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """One epoch: critic steps (co-training), then one SRNet step. Returns the epoch's
    record (``_RECORD``) as a device tensor, without a host sync."""
    zero = x.new_zeros(())
    use_sd = c is not None and cfg.sd > 0
    opt.zero_grad(set_to_none=True)
    pred, lat, jac = model(x, jacobian=use_sd and "grad" in (c.ext if c else ()))
    ok, terms = zero, x.new_zeros(3)
    if c is not None and c.opt is not None:
        jac_d = None if jac is None else jac.detach()
        fake = critic_input(lat.detach().T, _extras(c.ext, x, jac_d, lat.shape[1]), c.ext_type)
        c.net.requires_grad_(True)
        correct, terms, _ = critic_steps(
            c.net, c.opt, _real_batch(cfg, c, x, gen), fake, iters=cfg.disc.iters,
            loss=cfg.disc.loss, gp=cfg.disc.gp, generator=gen,
        )  # fmt: skip
        c.net.requires_grad_(False)  # the SD term below must not train the critic
        ok = correct.to(zero.dtype)
    pred_loss = F.mse_loss(pred, y)
    loss = pred_loss + _regularisers(cfg, model, lat)
    l_sd, p_mean = zero, zero
    if use_sd and c is not None:
        l_sd, p_mean = sd_term(cfg, c.net, lat, _extras(c.ext, x, jac, lat.shape[1]), c.ext_type)
        loss = loss + l_sd
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    return torch.stack([loss, pred_loss, l_sd, p_mean, ok, *terms]).detach()


def _check(records: list[list[float]], first: int, cfg: SRNetConfig) -> None:
    for e, rec in enumerate(records, first):
        broken = [n for n, v in zip(_RECORD, rec, strict=True) if not math.isfinite(v)]
        if broken:
            raise KernelFailed(
                f"non-finite loss at epoch {e} ({', '.join(broken)} is NaN/inf; "
                f"lr={cfg.lr}, sd={cfg.sd}, sd_fun={cfg.sd_fun}, disc.lr={cfg.disc.lr})"
            )


def train(cfg: SRNetConfig, run: Run) -> None:
    """Train the SRNet for ``cfg.epochs`` epochs (or until stopped) and save it.

    Raises:
        KernelFailed: a loss became NaN/inf, the fixed critic's file became unusable,
            or CUDA was requested but is absent.
    """
    device = resolve_device(cfg.device)
    x, y, _ = _rows(cfg, "train", device)
    xv, yv, gv = _rows(cfg, "val", device)
    model = build_model(cfg).to(device)
    opt = Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)  # fused; see optim.py
    c = _critic(cfg, len(x), device)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU: the same draws on every device
    train_loss: list[float] = []
    logs: dict[str, list[Any]] = {k: [] for k in ("val_loss", "corr_mats", "disc_preds",
                                                  "disc_loss", "times")}  # fmt: skip
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
        _check(records, epoch - len(records) + 1, cfg)
        train_loss += [r[0] for r in records]
        loss, pred_loss, l_sd, p_mean, ok, l_r, l_f, pen = records[-1]
        val_loss, corr = _evaluate(model, xv, yv, gv)
        row = {"epoch": epoch, "time": elapsed, "train_loss": loss, "pred_loss": pred_loss,
               "val_loss": val_loss, "min_corr": _min_corr(corr)}  # fmt: skip
        if c is not None and cfg.sd > 0:
            share = abs(l_sd) / max(abs(l_sd) + abs(pred_loss), 1e-30)
            row.update(disc_preds=p_mean, disc_loss=l_sd, sd_share=share)
        if c is not None and c.opt is not None:
            row.update(critic_acc=ok / (cfg.disc.iters * 2 * cfg.arch.lat_size),
                       critic_loss=l_r + l_f + cfg.disc.gp * pen)  # fmt: skip
        for key, value in zip(logs, (val_loss, corr, p_mean, l_sd, elapsed), strict=True):
            logs[key].append(value)
        run.log(row, step=epoch)
        if last or run.should_stop():
            break
    _save(cfg, run, model, opt, c, train_loss, logs, (x, y, xv, yv, gv))


@torch.no_grad()
def _evaluate(
    model: SRNet, xv: torch.Tensor, yv: torch.Tensor, gv: torch.Tensor
) -> tuple[float, Any]:
    """Validation MSE and the latent / true-latent correlation matrix (numpy)."""
    pred, lat, _ = model(xv)
    return F.mse_loss(pred, yv).item(), _correlations(lat, gv).cpu().numpy()


def _min_corr(corr: Any) -> float:
    """Min over learned latents of the max |r| against any true latent."""
    return float(abs(corr).max(1).min())


def _cpu(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        out[k] = v.detach().cpu() if isinstance(v, torch.Tensor) else v
        if isinstance(v, dict):
            out[k] = _cpu(v)
    return out


def _save(
    cfg: SRNetConfig,
    run: Run,
    model: SRNet,
    opt: Adam,
    c: _Critic | None,
    train_loss: list[float],
    logs: dict[str, list[Any]],
    split: tuple[torch.Tensor, ...],
) -> None:
    x, y, xv, yv, gv = split
    with torch.no_grad():
        total_train = F.mse_loss(model(x)[0], y).item()
        pred_v, lat_v, _ = model(xv)
        total_val = F.mse_loss(pred_v, yv).item()
    state: dict[str, Any] = {
        "model_state": _cpu(model.state_dict()),
        "optimizer_state": _cpu(opt.state_dict()),
        "train_loss": train_loss,  # per epoch; the rest per log
        **logs,
        # [lat, n_true] Pearson r on the validation rows at the end
        "corr_mat": _correlations(lat_v, gv).cpu().numpy(),
        "total_train_loss": total_train,
        "total_val_loss": total_val,
        "val_latents": lat_v.cpu().numpy(),  # the report plots these against val_true
        "val_true": gv.cpu().numpy(),
        "in_var": cfg.in_var,
        "target_var": cfg.target_var,
        "lat_var": cfg.lat_var,
    }
    if c is not None:
        state["disc_state"] = _cpu(c.net.state_dict())
        state["disc_fixed"] = c.opt is None
        if c.opt is not None:
            state.update(disc_opt_state=_cpu(c.opt.state_dict()), fun_lib=cfg.fun_lib,
                         disc_shuffle=cfg.shuffle, disc_iter_sample=cfg.iter_sample)  # fmt: skip
        if c.saved_hyperparams is not None:  # the sd run's config, for a fixed critic
            state.update(disc_hyperparams=c.saved_hyperparams, disc_from_run=cfg.disc.from_run)
    run.save(state)


KERNEL = Kernel(
    name="srnet",
    config=SRNetConfig,
    train=train,
    metric="min_corr",
    goal="maximize",
    curve="min_corr",
    summary="SRNet/DSN regression (X07 -> F07) with a symbolic discriminator as a "
    "regulariser (seed 003, study 184)",
    pack_key=srnet_pack.pack_key,
    train_packed=srnet_pack.train_packed,
)
