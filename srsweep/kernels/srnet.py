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
"ghost" optimiser). Trials are not packed (no ``pack_key``). Facts:
``../shared/reference/symrep.md`` sections 2, 3, 5, 7-9.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from srsweep import store
from srsweep.errors import KernelFailed
from srsweep.errors import SrsweepError
from srsweep.kernels import data
from srsweep.kernels import funlib
from srsweep.kernels._base import Kernel
from srsweep.kernels._config import param
from srsweep.kernels.dsn import SRNet
from srsweep.kernels.nets import SDNet
from srsweep.kernels.nets import critic_input
from srsweep.kernels.nets import critic_steps
from srsweep.kernels.nets import resolve_device
from srsweep.kernels.optim import Adam

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

    in_size: int | None = param(None, ge=1, help="input columns used; null = all of in_var")
    out_size: int = param(1, ge=1, help="output size (the target's columns)")
    lat_size: int = param(3, ge=1, help="latent features (G07 has 3)")
    # 184 swept (2|3|4, 0) x 32/64/128: its DSNs needed hid_num >= 3 and the width was
    # inconclusive (section 11), so 3 layers of the cheapest width.
    hid_num: int | tuple[int, int] = param((3, 0), ge=0, help="hidden layers, or (l1, l2)")
    hid_size: int | tuple[int, int] = param(32, ge=1, help="hidden width, or (l1, l2)")
    hid_type: HidType | tuple[HidType, HidType] = param(("DSN", "MLP"), help="MLP or DSN")
    hid_kwargs: HidKwargs = param(factory=HidKwargs)


@dataclass(frozen=True)
class DiscConfig:
    """The co-trained critic (184: BCE, 2x64), or a fixed one from an ``sd`` run."""

    from_run: str | None = param(
        None, help="fixed critic: an sd run id or .joblib path (then disc.* are ignored)"
    )
    hid_num: int | tuple[int, int] = param(2, ge=0, help="hidden layers, or (embed, critic)")
    hid_size: int | tuple[int, int] = param(64, ge=1, help="hidden width, or (embed, critic)")
    lr: float = param(1e-4, gt=0, help="critic Adam learning rate")
    wd: float = param(1e-7, ge=0, help="critic Adam weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, help="critic Adam betas, each < 1")
    iters: int = param(5, ge=1, help="critic steps per epoch, before the SD term")
    gp: float = param(0.0, ge=0, help="gradient-penalty weight (every BCE run used 0)")
    loss: Literal["bce", "wgan"] = param("bce", help="critic loss")


@dataclass(frozen=True)
class SRNetConfig:
    """Config of the ``srnet`` kernel; defaults are the 184 study's base run."""

    seed: int = param(0, ge=0, help="seeds both networks' init and every draw")
    epochs: int = param(50_000, ge=1, help="full-batch epochs")
    log_freq: int = param(25, ge=1, help="log every this many epochs (and the last)")
    avg_hor: int = param(500, ge=1, help="report smoothing window in epochs")
    runtime: float | None = param(None, gt=0, help="stop after this many seconds")
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")
    in_var: str = param("X07", help="inputs")
    target_var: str = param("F07", help="regression target")
    lat_var: str = param("G07", help="true latents, for min_corr")
    fun_lib: str = param("F07_v2", help="library of the co-trained critic's real samples")
    shuffle: bool = param(True, help="draw library lines with replacement")
    iter_sample: bool = param(False, help="a fresh real batch for every critic step")
    ext: tuple[Literal["input", "grad"], ...] = param((), help="extra per-point critic features")
    ext_type: Literal["embed", "stack"] = param("embed", help="how extras reach the critic")
    lr: float = param(1e-4, gt=0, help="SRNet Adam learning rate")
    wd: float = param(1e-7, ge=0, help="SRNet Adam weight decay")
    l1: float = param(0.0, ge=0, help="L1 on the latents")
    a1: float = param(0.0, ge=0, help="DSN mask sparsity: sum of row L1 norms")
    a2: float = param(0.0, ge=0, help="DSN mask sparsity: L2 norm of the row L1 norms")
    e1: float = param(0.0, ge=0, help="DSN mask entropy: sum of squared row entropies")
    sd: float = param(1.0, ge=0, help="weight of the SD term; 0 turns the critic off")
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
        """Cross-field rules, each message naming its dotted key; a ``disc.from_run`` is
        resolved and its critic checked here, before anything trains."""
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
        if self.disc.from_run is not None and not out:
            out += _critic_violations(self)
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


# --- fixed critic: finding and checking an sd run -----------------------------------


def resolve_run(ref: str) -> Path:
    """The model file of ``ref``: a ``.joblib`` path (or any existing file) as it is, else
    a run id looked up in the local ledger the ``srsweep`` command runs on (its
    ``--results``, passed down as ``$SRSWEEP_LEDGER_DIR``; else ``$SRSWEEP_RESULTS``,
    else ``results``).

    Raises:
        SrsweepError: no such run, the run is not an ``sd`` run, or it saved no file;
            the message says what ``disc.from_run`` must name.
    """
    path = Path(ref)
    if path.suffix == ".joblib" or path.is_file():
        return path
    from srsweep.backends.local import LocalBackend  # the ledger, only when a run id is given

    env = os.environ
    root = Path(env.get("SRSWEEP_LEDGER_DIR") or env.get("SRSWEEP_RESULTS") or "results")
    backend = LocalBackend(root)
    try:
        record = backend.run(ref)
    except SrsweepError:
        raise SrsweepError(
            f"no run {ref!r} in {backend.path}; give the id of a finished sd run "
            "(`srsweep run sd ...`, same --results or SRSWEEP_RESULTS) or the path of "
            "its .joblib model file"
        ) from None
    finally:
        backend.close()
    if record.kernel != "sd":
        raise SrsweepError(f"run {ref} is a {record.kernel!r} run; it must be an 'sd' run")
    if not record.model_path:
        raise SrsweepError(f"run {ref} ({record.state}) saved no model file")
    return Path(record.model_path)


def load_critic_run(ref: str) -> dict[str, Any]:
    """The saved ``sd`` run ``ref`` (see ``resolve_run``), checked to be one."""
    payload = store.load(resolve_run(ref))
    kernel = payload.get("kernel", "sd" if "disc_state" in payload else None)
    if kernel != "sd" or "disc_state" not in payload:
        raise SrsweepError(f"{ref} is a {kernel!r} run's file; it must be an 'sd' run's")
    return payload


def _fixed_critic(cfg: SRNetConfig, payload: dict[str, Any]) -> tuple[SDNet, tuple[str, ...], str]:
    """Build the saved critic for this SRNet's N points; raise if its inputs do not fit."""
    hp = payload["hyperparams"]
    sd_var = hp.get("in_var", cfg.in_var)
    if sd_var not in data.VARIABLES or not np.array_equal(
        data.inputs(sd_var), data.inputs(cfg.in_var)
    ):
        # one critic input = one curve over fixed, ordered points: other points, other task
        raise SrsweepError(
            f"its critic scores curves over the {sd_var} training points, but this "
            f"SRNet's latents are curves over the {cfg.in_var} ones; in_var must match"
        )
    ext, ext_type = tuple(hp.get("ext") or ()), str(hp.get("ext_type", "embed"))
    n = len(data.masks(cfg.in_var)["train"])
    c = len(ext) * cfg.n_in
    shapes = {k: tuple(v.shape) for k, v in payload["disc_state"].items()}
    want = n if ext_type == "embed" else n * (1 + c)
    got = shapes.get("layers2.0.weight", (0, 0))[1]
    emb_got = shapes.get("layers1.0.weight", (0, 1))[1]
    emb_want = 1 + c if ext_type == "embed" and c > 0 else 1
    if (got, emb_got) != (want, emb_want):
        sd_in = (hp.get("arch") or {}).get("in_size")
        raise SrsweepError(
            f"its critic takes {got} input(s) with {emb_got} channel(s) per point (sd run: "
            f"in_var {hp.get('in_var')}, arch.in_size {sd_in}, ext {list(ext)}, ext_type "
            f"{ext_type}), but the latents of this SRNet give {want} with {emb_want} "
            f"({n} {cfg.in_var} training rows, {cfg.n_in} input column(s))"
        )
    d = hp.get("disc") or {}

    def tup(v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    critic = SDNet(want, tup(d.get("hid_num", 1)), tup(d.get("hid_size", 100)),
                   emb_size=emb_want if emb_want > 1 else None)  # fmt: skip
    try:
        critic.load_state_dict(payload["disc_state"])
    except RuntimeError as e:
        raise SrsweepError(f"its critic state does not fit its config ({e})") from None
    return critic, ext, ext_type


def _critic_violations(cfg: SRNetConfig) -> list[str]:
    ref = cfg.disc.from_run
    assert ref is not None
    try:
        _fixed_critic(cfg, load_critic_run(ref))
    except SrsweepError as e:
        return [f"disc.from_run: {ref!r}: {e}"]
    return []


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
            net, ext, ext_type = _fixed_critic(cfg, payload)
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
)
