"""The ``srnet`` kernel's config, torch-free: the SRNet and critic keys with the 184
study's base run as defaults, their cross-field rules, and the pack key.

``create``, ``kernels`` and ``status`` read this module, so it imports no torch. The
``disc.from_run`` key (a saved ``sd`` run's critic) is checked by ``from_run.resolve``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from typing import Literal

from srsweep.config import MAX_SEED
from srsweep.config import param
from srsweep.kernels.common import bounds
from srsweep.kernels.common import data
from srsweep.kernels.common import funlib

__all__ = [
    "HidKwargs",
    "ArchConfig",
    "DiscConfig",
    "SRNetConfig",
    "packable",
    "pack_key",
]

HidType = Literal["MLP", "DSN"]
Norm = Literal["identity", "softmax"]
AlphaOne = int | tuple[tuple[float, ...], ...] | None
# A scalar applies to both halves, a pair is (layers1, layers2): the tuple rule. An
# alpha of mask rows is one mask; a pair of masks/None/-1 is one per half.
AlphaKey = AlphaOne | tuple[AlphaOne, AlphaOne]


@dataclass(frozen=True)
class HidKwargs:
    """Options of DSN halves (ignored for MLP halves); each may be a (layers1, layers2) pair."""

    # The 184 study fixed which inputs each latent sees: x0, x1, and both (for 4.5 x0 x1).
    alpha: AlphaKey = param(
        ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)),
        help="input mask logits [lat, in]: null = random trainable, -1 = random frozen",
    )
    norm: Norm | tuple[Norm, Norm] = param("identity", help="mask = alpha or softmax(|alpha|)")
    prune: float | None | tuple[float | None, float | None] = param(
        None, ge=0, help="zero mask entries with |m| below this"
    )


@dataclass(frozen=True)
class ArchConfig:
    """The SRNet: input -> layers1 -> lat_size latents -> layers2 -> output."""

    in_size: int | None = param(None, ge=1, le=64, help="input columns used; null = all of in_var")
    out_size: int = param(1, ge=1, le=64, help="output size (the target's columns)")
    lat_size: int = param(3, ge=1, le=1024, help="latent features (G07 has 3)")
    # 184 swept (2|3|4, 0) x 32/64/128: its DSNs needed hid_num >= 3 and the width was
    # inconclusive (section 11), so 3 layers of the cheapest width.
    hid_num: int | tuple[int, int] = param(
        (3, 0), ge=0, le=bounds.MAX_LAYERS, help="hidden layers, or (l1, l2)"
    )
    hid_size: int | tuple[int, int] = param(
        32, ge=1, le=bounds.MAX_WIDTH, help="hidden width, or (l1, l2)"
    )
    hid_type: HidType | tuple[HidType, HidType] = param(("DSN", "MLP"), help="MLP or DSN")
    hid_kwargs: HidKwargs = param(factory=HidKwargs)


@dataclass(frozen=True)
class DiscConfig:
    """The co-trained critic (184: BCE, 2x64), or a fixed one from an ``sd`` run."""

    from_run: str | None = param(
        None, help="fixed critic: an sd run id or .joblib path (then disc.* are ignored)"
    )
    hid_num: int | tuple[int, int] = param(
        2, ge=0, le=bounds.MAX_LAYERS, help="hidden layers, or (embed, critic)"
    )
    hid_size: int | tuple[int, int] = param(
        64, ge=1, le=bounds.MAX_WIDTH, help="hidden width, or (embed, critic)"
    )
    lr: float = param(1e-4, gt=0, le=bounds.MAX_LR, help="critic Adam learning rate")
    wd: float = param(1e-7, ge=0, le=10, help="critic Adam weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, help="critic Adam betas, each < 1")
    iters: int = param(5, ge=1, le=1000, help="critic steps per epoch, before the SD term")
    gp: float = param(0.0, ge=0, le=1e4, help="gradient-penalty weight (every BCE run used 0)")
    loss: Literal["bce", "wgan"] = param("bce", help="critic loss")


@dataclass(frozen=True)
class SRNetConfig:
    """Config of the ``srnet`` kernel; defaults are the 184 study's base run."""

    seed: int = param(0, ge=0, le=MAX_SEED, help="seeds both networks' init and every draw")
    epochs: int = param(50_000, ge=1, le=bounds.MAX_EPOCHS, help="full-batch epochs")
    log_freq: int = param(
        25, ge=1, le=bounds.MAX_EPOCHS, help="log every this many epochs (and the last)"
    )
    avg_hor: int = param(500, ge=1, le=bounds.MAX_EPOCHS, help="report smoothing window in epochs")
    runtime: float | None = param(
        None, gt=0, le=bounds.MAX_SECONDS, help="stop after this many seconds"
    )
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")
    in_var: str = param("X07", help="inputs")
    target_var: str = param("F07", help="regression target")
    lat_var: str = param("G07", help="true latents, for min_corr")
    fun_lib: str = param("F07_v2", help="library of the co-trained critic's real samples")
    shuffle: bool = param(True, help="draw library lines with replacement")
    iter_sample: bool = param(False, help="a fresh real batch for every critic step")
    ext: tuple[Literal["input", "grad"], ...] = param((), help="extra per-point critic features")
    ext_type: Literal["embed", "stack"] = param("embed", help="how extras reach the critic")
    lr: float = param(1e-4, gt=0, le=bounds.MAX_LR, help="SRNet Adam learning rate")
    wd: float = param(1e-7, ge=0, le=10, help="SRNet Adam weight decay")
    # penalty weights: Adam's steps do not grow with them, 1e6 is far past any study's
    l1: float = param(0.0, ge=0, le=1e6, help="L1 on the latents")
    a1: float = param(0.0, ge=0, le=1e6, help="DSN mask sparsity: sum of row L1 norms")
    a2: float = param(0.0, ge=0, le=1e6, help="DSN mask sparsity: L2 norm of the row L1 norms")
    e1: float = param(0.0, ge=0, le=1e6, help="DSN mask entropy: sum of squared row entropies")
    sd: float = param(1.0, ge=0, le=1e6, help="weight of the SD term; 0 turns the critic off")
    sd_fun: Literal["linear", "sigmoid", "logsigmoid"] = param("linear", help="phi(p)")
    arch: ArchConfig = param(factory=ArchConfig)
    disc: DiscConfig = param(factory=DiscConfig)

    @property
    def n_in(self) -> int:
        return self.arch.in_size or data.inputs(self.in_var).shape[1]

    @property
    def cotrained(self) -> bool:
        return self.sd > 0 and self.disc.from_run is None

    def pairs(self) -> dict[str, tuple[Any, Any]]:
        """The tuple rule applied: each per-half setting as a (layers1, layers2) pair."""
        a, kw = self.arch, self.arch.hid_kwargs
        return {
            "hid_num": _pair(a.hid_num),
            "hid_size": _pair(a.hid_size),
            "hid_type": _pair(a.hid_type),
            "alpha": _alpha_pair(kw.alpha),
            "norm": _pair(kw.norm),
            "prune": _pair(kw.prune),
        }

    def violations(self) -> list[str]:
        """Cross-field rules, each message naming its dotted key (``disc.from_run`` is
        ``resolve``'s)."""
        if self.in_var not in data.VARIABLES:
            return [f"in_var: must be one of {', '.join(data.VARIABLES)}, but got {self.in_var!r}"]
        out: list[str] = []
        rows, cols = data.inputs(self.in_var).shape
        if self.arch.in_size is not None and self.arch.in_size > cols:
            out.append(f"arch.in_size: {self.in_var} has {cols} column(s), but got {self.n_in}")
        for key in ("target_var", "lat_var"):
            name = getattr(self, key)
            if name not in data.TARGETS:
                out.append(f"{key}: must be one of {', '.join(data.TARGETS)}, but got {name!r}")
            elif data.targets(name).shape[0] != rows:
                n = data.targets(name).shape[0]
                out.append(f"{key}: {name} has {n} rows, but {self.in_var} has {rows}")
        if self.target_var in data.TARGETS:
            t_cols = data.targets(self.target_var).shape[1]
            if t_cols != self.arch.out_size:
                out.append(
                    f"arch.out_size: {self.target_var} has {t_cols} column(s), "
                    f"but got {self.arch.out_size}"
                )
        out += self._arch_violations()
        if len(set(self.ext)) != len(self.ext):
            out.append(f"ext: entries must be distinct, but got {list(self.ext)}")
        if any(b >= 1 for b in self.disc.betas):
            out.append(f"disc.betas: each must be < 1, but got {list(self.disc.betas)}")
        if self.fun_lib not in funlib.available():
            out.append(
                f"fun_lib: must be one of {', '.join(funlib.available())}, but got {self.fun_lib!r}"
            )
        elif self.cotrained and not out:
            out += self._library_violations()
        return out

    def _arch_violations(self) -> list[str]:
        out = []
        p = self.pairs()
        ends = ((self.n_in, self.arch.lat_size), (self.arch.lat_size, self.arch.out_size))
        for i, (n_in, n_out) in enumerate(ends):
            alpha = p["alpha"][i]
            if p["hid_type"][i] != "DSN" or alpha is None:
                continue
            if isinstance(alpha, int):
                if alpha != -1:
                    out.append(f"arch.hid_kwargs.alpha: an integer must be -1, but got {alpha}")
                continue
            widths = sorted({len(r) for r in alpha})
            if widths != [n_in] or len(alpha) != n_out:
                out.append(
                    f"arch.hid_kwargs.alpha: the DSN layers{i + 1} needs a mask of {n_out} "
                    f"row(s) of {n_in} (outputs x inputs), but got {len(alpha)} row(s) of "
                    f"{'/'.join(map(str, widths))}"
                )
        if not any(t == "DSN" for t in p["hid_type"]):
            for key in ("a1", "a2", "e1"):
                if getattr(self, key) > 0:
                    out.append(f"{key}: acts on a DSN mask, but arch.hid_type has no DSN half")
        return out

    def _library_violations(self) -> list[str]:
        out = []
        lib = funlib.FunctionLibrary(self.fun_lib)
        if lib.in_var not in (None, self.in_var):
            out.append(f"fun_lib: {self.fun_lib} is written for {lib.in_var}, not {self.in_var}")
        if lib.n_columns > self.n_in:
            out.append(
                f"arch.in_size: {self.fun_lib} uses {lib.n_columns} input column(s), "
                f"but got {self.n_in}"
            )
        if "grad" in self.ext and lib.n_derivs != self.n_in:
            out.append(
                f"ext: 'grad' needs one derivative per input column ({self.n_in}), "
                f"but {self.fun_lib} has {lib.n_derivs}"
            )
        if not self.shuffle and self.arch.lat_size > len(lib):
            out.append(
                f"arch.lat_size: without shuffle at most the {len(lib)} line(s) of "
                f"{self.fun_lib}, but got {self.arch.lat_size}"
            )
        return out


def _pair(v: Any) -> tuple[Any, Any]:
    return (v[0], v[1]) if isinstance(v, tuple) else (v, v)


def _alpha_pair(alpha: AlphaKey) -> tuple[AlphaOne, AlphaOne]:
    """One mask (rows of numbers) applies to both halves; anything else is a pair."""
    if alpha is None or isinstance(alpha, int):
        return alpha, alpha
    if all(isinstance(r, tuple) and all(isinstance(v, (int, float)) for v in r) for r in alpha):
        return alpha, alpha  # type: ignore[return-value]
    return alpha[0], alpha[1]  # type: ignore[return-value]


# --- packing ------------------------------------------------------------------------


def packable(cfg: SRNetConfig) -> bool:
    """Whether ``train_packed`` trains ``cfg`` batched (else it runs the solo ``train``)."""
    return cfg.disc.from_run is None and not (cfg.cotrained and cfg.disc.gp > 0)


def pack_key(cfg: SRNetConfig) -> tuple[Hashable, ...]:
    """Trials with equal keys can train in one pack: same SRNet shape and masks, data,
    schedule, device, regularisers in use and critic setup."""
    if not packable(cfg):
        return ("srnet", "solo", cfg)  # only identical configs share it
    p = cfg.pairs()
    arch = (cfg.n_in, cfg.arch.out_size, cfg.arch.lat_size, *(p[k] for k in sorted(p)))
    data_ = (cfg.in_var, cfg.target_var, cfg.lat_var)
    regs = (cfg.l1 > 0, cfg.a1 > 0 or cfg.a2 > 0, cfg.e1 > 0)
    critic: tuple[Hashable, ...] = ()
    if cfg.cotrained:
        d = cfg.disc
        critic = (
            cfg.fun_lib,
            cfg.shuffle,
            cfg.iter_sample,
            cfg.ext,
            cfg.ext_type,
            d.hid_num,
            d.hid_size,
            d.iters,
            d.loss,
        )
    sched = (cfg.epochs, cfg.log_freq, cfg.runtime)
    return ("srnet", cfg.device, arch, data_, sched, regs, cfg.cotrained, critic)
