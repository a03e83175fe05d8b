"""The ``sd`` kernel's config (seed 003): generator, critic and schedule, their
cross-field rules, and which trials may train in one pack.

Imports no torch: ``srsweep create``, ``kernels`` and ``status`` build and check these
configs without training. Defaults are study 153's base run; reference
``../shared/reference/symrep.md`` sections 4-9.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from srsweep.config import MAX_SEED
from srsweep.config import param
from srsweep.kernels.common import bounds
from srsweep.kernels.common import data
from srsweep.kernels.common import funlib

__all__ = ["ArchConfig", "DiscConfig", "SDConfig", "library", "pack_key"]


@dataclass(frozen=True)
class ArchConfig:
    """The fake generator, an SRNet whose first half is an untrained MLP."""

    in_size: int = param(
        1, ge=1, le=64, help="input columns of in_var used (X10 column 0 in the study)"
    )
    out_size: int = param(1, ge=1, le=64, help="SRNet output size; unused here, kept for srnet")
    # (layers1, layers2) as in SRNet: only layers1 (in -> 32 -> 32 -> lat) makes the
    # latents; layers2 is the regression head and never runs in this study.
    hid_num: tuple[int, int] = param(
        (2, 0), ge=0, le=bounds.MAX_LAYERS, help="hidden layers (latent MLP, head)"
    )
    hid_size: int = param(32, ge=1, le=bounds.MAX_WIDTH, help="generator hidden width")
    lat_size: int = param(5, ge=1, le=1024, help="latents = fake (and real) samples per epoch")


@dataclass(frozen=True)
class DiscConfig:
    """The critic and its optimiser (reference sections 4-5)."""

    # Study 153's base critic. An int applies to both parts; the 155 sweeps used
    # (embedding, critic) pairs such as (2, 4).
    hid_num: int | tuple[int, int] = param(
        6, ge=0, le=bounds.MAX_LAYERS, help="hidden layers, or (embed, critic)"
    )
    hid_size: int | tuple[int, int] = param(
        128, ge=1, le=bounds.MAX_WIDTH, help="hidden width, or (embed, critic)"
    )
    lr: float = param(1e-4, gt=0, le=bounds.MAX_LR, help="Adam learning rate")
    # The sweeps replaced the whole disc section, so unswept keys fell back to SDNet's
    # class defaults: wd 1e-7 (the notebook's 1e-4 never ran in a sweep), section 9.
    wd: float = param(1e-7, ge=0, le=10, help="Adam weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, help="Adam betas, each in [0, 1)")
    iters: int = param(5, ge=1, le=1000, help="critic steps per freshly drawn batch")
    # 153's base; runs with no penalty mostly did not learn (trend 4, section 11).
    gp: float = param(1e-5, ge=0, le=1e4, help="gradient-penalty weight; 0 turns it off")
    # Every F10 study sweep used WGAN; BCE came later and learned far better (section 11).
    loss: Literal["wgan", "bce"] = param("wgan", help="critic loss")


@dataclass(frozen=True)
class SDConfig:
    """Config of the ``sd`` kernel; defaults are study 153's base run."""

    seed: int = param(
        0, ge=0, le=MAX_SEED, help="seeds the critic's init and the per-epoch draws, a stream each"
    )
    epochs: int = param(
        100_000, ge=1, le=bounds.MAX_EPOCHS, help="epochs; one fresh generator each"
    )
    log_freq: int = param(
        25, ge=1, le=bounds.MAX_EPOCHS, help="log every this many epochs (and the last)"
    )
    avg_hor: int = param(500, ge=1, le=bounds.MAX_EPOCHS, help="epochs averaged into avg_acc")
    runtime: float | None = param(
        None, gt=0, le=bounds.MAX_SECONDS, help="stop after this many seconds"
    )
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")
    in_var: str = param("X10", help="input variable; its training rows are the N points")
    fun_lib: str = param("F10_v1", help="function library of the real samples")
    shuffle: bool = param(True, help="draw library lines with replacement")
    # False in the study: one real batch serves all critic steps of an epoch.
    iter_sample: bool = param(False, help="draw a new real batch for every critic step")
    ext: tuple[Literal["input", "grad"], ...] = param((), help="extra per-point features")
    ext_type: Literal["embed", "stack"] = param("embed", help="how extras reach the critic")
    ext_size: int | None = param(None, ge=0, le=64, help="extra channels; null = derived from ext")
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
            lib = library(self.fun_lib)
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
def library(name: str) -> funlib.FunctionLibrary:
    """The shipped function library ``name``, parsed once per process (config checks,
    solo and packed training all read it).

    Raises:
        NotFoundError: no shipped library has that name.
    """
    return funlib.FunctionLibrary(name)


def pack_key(cfg: SDConfig) -> tuple[Hashable, ...]:
    """Trials with equal keys can train in one pack: same critic layer shapes, data,
    generator architecture, device and schedule (``packed``'s docstring says what may
    differ)."""
    d, a = cfg.disc, cfg.arch
    nums = d.hid_num if isinstance(d.hid_num, tuple) else (d.hid_num, d.hid_num)
    sizes = d.hid_size if isinstance(d.hid_size, tuple) else (d.hid_size, d.hid_size)
    ext = cfg.ext_channels
    embed = cfg.ext_type == "embed" and ext > 0  # SDNet embeds only with extras
    critic = (nums, sizes) if embed else (nums[1], sizes[1])
    # with no extras, "embed" and "stack" build the same critic from the same inputs
    extras = (cfg.ext, cfg.ext_type) if ext else ()
    draws = (cfg.in_var, cfg.fun_lib, cfg.shuffle, cfg.iter_sample)
    schedule = (cfg.epochs, cfg.log_freq, cfg.runtime)
    return (
        "sd",
        critic,
        extras,
        draws,
        (a.in_size, a.hid_num[0], a.hid_size),
        cfg.device,
        schedule,
    )
