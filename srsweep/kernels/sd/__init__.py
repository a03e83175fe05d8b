"""``sd``: a symbolic discriminator trained without generator training (seed 003, step 15).

Each epoch draws a brand-new, untrained MLP and takes its latent activations on the
700 X10 training inputs as "fake" curves, draws as many "real" curves from a function
library (F10_v1: random parabolas), and takes ``disc.iters`` critic steps on that
batch. The critic sees each curve as one vector over all N points, optionally with the
inputs or the derivatives as extra per-point features (embedded or stacked). The metric
is the critic's accuracy, smoothed over ``avg_hor`` epochs: the studies 153 and 155
asked which critic settings learn fast and hold.

Follows the study-time code of ``fabxy/symrep`` as described in
``../shared/reference/symrep.md`` sections 1, 2, 4-9; seed
``../shared/seeds/003_f89b2fc1e644a777.txt``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import torch

from srsweep.config import param
from srsweep.errors import KernelFailed
from srsweep.kernels.sd import packed as sd_pack
from srsweep.kernels._base import Kernel
from srsweep.kernels.common import data
from srsweep.kernels.common import funlib
from srsweep.kernels.common.nets import SDNet
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import critic_steps
from srsweep.kernels.common.nets import mlp_apply
from srsweep.kernels.common.nets import random_mlp
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.optim import Adam

if TYPE_CHECKING:
    from srsweep.kernels._base import Run

__all__ = ["ArchConfig", "DiscConfig", "SDConfig", "KERNEL", "train", "make_batch", "make_critic"]


@dataclass(frozen=True)
class ArchConfig:
    """The fake generator, an SRNet whose first half is an untrained MLP."""

    in_size: int = param(1, ge=1, help="input columns of in_var used (X10 column 0 in the study)")
    out_size: int = param(1, ge=1, help="SRNet output size; unused here, kept for srnet")
    # (layers1, layers2) as in SRNet: only layers1 (in -> 32 -> 32 -> lat) makes the
    # latents; layers2 is the regression head and never runs in this study.
    hid_num: tuple[int, int] = param((2, 0), ge=0, help="hidden layers (latent MLP, head)")
    hid_size: int = param(32, ge=1, help="generator hidden width")
    lat_size: int = param(5, ge=1, help="latents = fake (and real) samples per epoch")


@dataclass(frozen=True)
class DiscConfig:
    """The critic and its optimiser (reference sections 4-5)."""

    # Study 153's base critic. An int applies to both parts; the 155 sweeps used
    # (embedding, critic) pairs such as (2, 4).
    hid_num: int | tuple[int, int] = param(6, ge=0, help="hidden layers, or (embed, critic)")
    hid_size: int | tuple[int, int] = param(128, ge=1, help="hidden width, or (embed, critic)")
    lr: float = param(1e-4, gt=0, help="Adam learning rate")
    # The sweeps replaced the whole disc section, so unswept keys fell back to SDNet's
    # class defaults: wd 1e-7 (the notebook's 1e-4 never ran in a sweep), section 9.
    wd: float = param(1e-7, ge=0, help="Adam weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, help="Adam betas, each in [0, 1)")
    iters: int = param(5, ge=1, help="critic steps per freshly drawn batch")
    # 153's base; runs with no penalty mostly did not learn (trend 4, section 11).
    gp: float = param(1e-5, ge=0, help="gradient-penalty weight; 0 turns it off")
    # Every F10 study sweep used WGAN; BCE came later and learned far better (section 11).
    loss: Literal["wgan", "bce"] = param("wgan", help="critic loss")


@dataclass(frozen=True)
class SDConfig:
    """Config of the ``sd`` kernel; defaults are study 153's base run."""

    seed: int = param(0, ge=0, help="seeds the critic's init and every per-epoch draw")
    epochs: int = param(100_000, ge=1, help="epochs; one fresh generator each")
    log_freq: int = param(25, ge=1, help="log every this many epochs (and the last)")
    avg_hor: int = param(500, ge=1, help="epochs averaged into avg_acc")
    runtime: float | None = param(None, gt=0, help="stop after this many seconds")
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")
    in_var: str = param("X10", help="input variable; its training rows are the N points")
    fun_lib: str = param("F10_v1", help="function library of the real samples")
    shuffle: bool = param(True, help="draw library lines with replacement")
    # False in the study: one real batch serves all critic steps of an epoch.
    iter_sample: bool = param(False, help="draw a new real batch for every critic step")
    ext: tuple[Literal["input", "grad"], ...] = param((), help="extra per-point features")
    ext_type: Literal["embed", "stack"] = param("embed", help="how extras reach the critic")
    ext_size: int | None = param(None, ge=0, help="extra channels; null = derived from ext")
    arch: ArchConfig = param(factory=ArchConfig)
    disc: DiscConfig = param(factory=DiscConfig)

    @property
    def ext_channels(self) -> int:
        """Extra channels per point: every ext entry adds one per input column."""
        return len(self.ext) * self.arch.in_size

    def violations(self) -> list[str]:
        """Cross-field rules, one message per broken rule (naming the dotted keys)."""
        out = []
        if self.in_var not in data.VARIABLES:
            out.append(
                f"in_var: must be one of {', '.join(data.VARIABLES)}, but got {self.in_var!r}"
            )
        elif self.arch.in_size > (cols := data.inputs(self.in_var).shape[1]):
            out.append(
                f"arch.in_size: {self.in_var} has {cols} column(s), but got {self.arch.in_size}"
            )
        if self.fun_lib not in funlib.available():
            out.append(
                f"fun_lib: must be one of {', '.join(funlib.available())}, but got {self.fun_lib!r}"
            )
        else:
            lib = _library(self.fun_lib)
            if lib.in_var not in (None, self.in_var):
                out.append(
                    f"fun_lib: {self.fun_lib} is written for {lib.in_var}, "
                    f"but in_var is {self.in_var!r}"
                )
            if lib.n_columns > self.arch.in_size:
                out.append(
                    f"arch.in_size: {self.fun_lib} uses {lib.n_columns} input "
                    f"column(s), but got {self.arch.in_size}"
                )
            if "grad" in self.ext and lib.n_derivs != self.arch.in_size:
                out.append(
                    f"ext: 'grad' needs one derivative per input column "
                    f"({self.arch.in_size}), but {self.fun_lib} has {lib.n_derivs}"
                )
            if not self.shuffle and self.arch.lat_size > len(lib):
                out.append(
                    f"arch.lat_size: without shuffle at most the {len(lib)} line(s) "
                    f"of {self.fun_lib}, but got {self.arch.lat_size}"
                )
        if len(set(self.ext)) != len(self.ext):
            out.append(f"ext: entries must be distinct, but got {list(self.ext)}")
        if self.ext_size is not None and self.ext_size != self.ext_channels:
            out.append(
                f"ext_size: must equal len(ext) * arch.in_size = {self.ext_channels}, "
                f"but got {self.ext_size}"
            )
        if any(b >= 1 for b in self.disc.betas):
            out.append(f"disc.betas: each must be < 1, but got {list(self.disc.betas)}")
        return out


@functools.cache
def _library(name: str) -> funlib.FunctionLibrary:
    return funlib.FunctionLibrary(name)


def make_critic(cfg: SDConfig, n_points: int) -> SDNet:
    """The critic for ``n_points`` inputs, initialised from ``cfg.seed`` (global RNG
    untouched, built on CPU so every device starts from the same weights)."""
    ext = cfg.ext_channels
    embed = cfg.ext_type == "embed"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return SDNet(
            n_points if embed else n_points * (1 + ext),
            cfg.disc.hid_num,
            cfg.disc.hid_size,
            emb_size=1 + ext if embed else None,
        )


@torch.no_grad()
def make_batch(
    cfg: SDConfig, lib: funlib.FunctionLibrary, x: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's critic data: a fresh untrained generator's latents and library draws.

    Args:
        cfg: the run's config.
        lib: the function library.
        x: the N training inputs ``[N, in_size]``.
        gen: source of every random draw.

    Returns:
        ``(reals [R, lat, ...], fake [lat, ...])`` where R is ``disc.iters`` with
        ``iter_sample`` and 1 otherwise, and ``...`` is ``N`` (no extras),
        ``N, 1 + ext`` (embed) or ``N * (1 + ext)`` (stack).
    """
    a, lat = cfg.arch, cfg.arch.lat_size
    params = random_mlp([a.in_size] + [a.hid_size] * a.hid_num[0] + [lat], gen, x.device)
    acts, jac = mlp_apply(params, x, jacobian="grad" in cfg.ext)  # (N, lat), (N, lat, in)
    n_real = cfg.disc.iters if cfg.iter_sample else 1
    draws = lib.sample(lat, x, iter_num=n_real, shuffle=cfg.shuffle, generator=gen)
    fake_ext, real_ext = [], []  # per point: (lat, N, c) and (R, lat, N, c)
    for name in cfg.ext:
        if name == "input":
            fake_ext.append(x.expand(lat, -1, -1))
            real_ext.append(x.expand(n_real, lat, -1, -1))
        else:
            assert jac is not None
            fake_ext.append(jac.transpose(0, 1))
            real_ext.append(draws[..., 1:])
    fake = critic_input(acts.T, fake_ext, cfg.ext_type)
    reals = critic_input(draws[..., 0], real_ext, cfg.ext_type)
    return reals, fake


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


_TERMS = ("loss_real", "loss_fake", "gp")


def log_epochs(
    cfg: SDConfig,
    run: Run,
    records: list[list[float]],
    first: int,
    tot_accs: list[float],
    elapsed: float,
) -> None:
    """Check the epochs ``first, first + 1, ...`` read back from the device (per epoch:
    correct predictions, the last critic step's loss_real, loss_fake and raw penalty, then
    a non-finite flag per term), append their accuracies to ``tot_accs`` and log the last
    one. Shared by ``train`` and the packed trainer, so both log the same thing.

    Raises:
        KernelFailed: a loss term was NaN/inf in one of these epochs.
    """
    d = cfg.disc
    per_epoch = d.iters * 2 * cfg.arch.lat_size  # predictions per epoch
    for e, (n_ok, *rest) in enumerate(records, first):
        broken = [name for name, flag in zip(_TERMS, rest[3:], strict=True) if flag]
        if broken:
            raise KernelFailed(
                f"non-finite critic loss at epoch {e} ({', '.join(broken)} is NaN/inf; "
                f"disc.lr={d.lr}, disc.loss={d.loss}, disc.gp={d.gp})"
            )
        tot_accs.append(n_ok / per_epoch)
    epoch = first + len(records) - 1
    l_real, l_fake, pen = records[-1][1:4]
    window = tot_accs[-cfg.avg_hor :]
    run.log(
        {
            "acc": tot_accs[-1],
            "avg_acc": sum(window) / len(window),
            "epoch": epoch,
            "time": elapsed,
            "loss": l_real + l_fake + d.gp * pen,
            "loss_real": l_real,
            "loss_fake": l_fake,
            "gp": pen,
        },
        step=epoch,
    )


def train(cfg: SDConfig, run: Run) -> None:
    """Train the critic for ``cfg.epochs`` epochs (or until stopped) and save it.

    Raises:
        KernelFailed: a critic loss term became NaN/inf, or CUDA was requested but absent.
    """
    device = resolve_device(cfg.device)
    lib = _library(cfg.fun_lib)
    rows = data.masks(cfg.in_var)["train"]
    x = torch.as_tensor(
        data.inputs(cfg.in_var)[rows, : cfg.arch.in_size], dtype=torch.float32, device=device
    )  # (N, in), mask order, unsorted
    critic = make_critic(cfg, len(x)).to(device)
    d = cfg.disc
    # torch's fused Adam (one kernel for all parameters: the per-step optimiser overhead
    # dominated these tiny critics), without torch.optim's 2-3 s import of torch._dynamo
    opt = Adam(critic.parameters(), lr=d.lr, weight_decay=d.wd, betas=d.betas)
    # One CPU generator for every per-epoch draw: the same seed then gives the same
    # generators, library samples and penalty mixes on CPU and on GPU.
    gen = torch.Generator().manual_seed(cfg.seed)
    tot_accs: list[float] = []
    times: list[float] = []
    pending: list[torch.Tensor] = []  # per-epoch records still on the device
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        reals, fake = make_batch(cfg, lib, x, gen)
        correct, terms, bad = critic_steps(
            critic, opt, reals, fake, iters=d.iters, loss=d.loss, gp=d.gp, generator=gen
        )
        pending.append(torch.cat([correct.to(terms.dtype).view(1), terms, bad.to(terms.dtype)]))
        times.append(time.perf_counter() - t0)
        last = epoch == cfg.epochs - 1 or (cfg.runtime is not None and times[-1] > cfg.runtime)
        if epoch % cfg.log_freq != 0 and not last:
            continue
        # One host sync per log: read back the pending epochs and check them.
        records = torch.stack(pending).cpu().tolist()
        pending.clear()
        log_epochs(cfg, run, records, epoch - len(records) + 1, tot_accs, times[-1])
        if last or run.should_stop():
            break
    run.save(
        {
            "disc_state": _to_cpu(critic.state_dict()),
            "disc_opt_state": _to_cpu(opt.state_dict()),
            "tot_accs": tot_accs,
            "times": times,
            "fun_lib": cfg.fun_lib,
            "in_var": cfg.in_var,
        }
    )


KERNEL = Kernel(
    name="sd",
    config=SDConfig,
    train=train,
    metric="avg_acc",
    goal="maximize",
    curve="acc",
    summary="symbolic discriminator: critic separating library curves from "
    "untrained-MLP latents (seed 003)",
    pack_key=sd_pack.pack_key,
    train_packed=sd_pack.train_packed,
)
