"""The ``srnet`` kernel's critic (the ``sd`` kernel's ``SDNet``), solo and packed alike.

Either co-trained (study 184): a fresh critic, seeded apart from the SRNet, that learns
from function-library draws; or fixed (study 173): the critic a saved ``sd`` run's model
file holds (``disc.from_run``, a path once ``from_run.resolve`` has run), loaded when
training starts and checked to fit this SRNet's latents before its weights are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from srsweep import store
from srsweep.errors import KernelFailed
from srsweep.errors import SrsweepError
from srsweep.kernels.common import funlib
from srsweep.kernels.common.nets import SDNet
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.optim import Adam
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.from_run import critic_misfit

__all__ = ["Critic", "make_critic", "load_sd_run", "fixed_critic", "build_critic", "real_batch"]


@dataclass
class Critic:
    """The critic side of a run: the network, and for co-training its optimiser and
    library; ``ext``/``ext_type`` are those of the saved run for a fixed critic."""

    net: SDNet
    ext: tuple[str, ...]
    ext_type: str
    opt: Adam | None = None
    lib: funlib.FunctionLibrary | None = None
    saved_hyperparams: dict[str, Any] | None = None


def make_critic(cfg: SRNetConfig, n: int) -> SDNet:
    """A fresh co-trained critic for ``n`` points, initialised from ``cfg.seed + 1``
    (global RNG left alone)."""
    c = len(cfg.ext) * cfg.n_in
    embed = cfg.ext_type == "embed"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)  # not the SRNet's stream
        return SDNet(
            n if embed else n * (1 + c),
            cfg.disc.hid_num,
            cfg.disc.hid_size,
            emb_size=1 + c if embed else None,
        )


def load_sd_run(path: str) -> dict[str, Any]:
    """The model file at ``path``, checked to be an ``sd`` run's.

    Raises:
        SrsweepError: no such file, unreadable, or another kernel's file.
    """
    payload = store.load(path)
    kernel = payload.get("kernel", "sd" if "disc_state" in payload else None)
    if kernel != "sd" or "disc_state" not in payload:
        raise SrsweepError(f"{path} is a {kernel!r} run's file; it must be an 'sd' run's")
    return payload


def fixed_critic(cfg: SRNetConfig, payload: dict[str, Any]) -> tuple[SDNet, tuple[str, ...], str]:
    """The saved critic of an ``sd`` run's ``payload``, built for this SRNet's N points,
    with the run's ``ext`` and ``ext_type``.

    Raises:
        SrsweepError: its inputs do not fit this SRNet's latents (``critic_misfit``), or
            its state does not load into the network its config describes.
    """
    hp = payload["hyperparams"]
    shapes = {k: tuple(v.shape) for k, v in payload["disc_state"].items()}
    got = shapes.get("layers2.0.weight", (0, 0))[1], shapes.get("layers1.0.weight", (0, 1))[1]
    why = critic_misfit(cfg, hp, got)
    if why:
        raise SrsweepError(why)
    want, emb = got  # they fit: what the latents give is what the critic takes
    d = hp.get("disc") or {}

    def tup(v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    critic = SDNet(
        want,
        tup(d.get("hid_num", 1)),
        tup(d.get("hid_size", 100)),
        emb_size=emb if emb > 1 else None,
    )
    try:
        critic.load_state_dict(to_tensors(payload["disc_state"]))
    except RuntimeError as e:
        raise SrsweepError(f"its critic state does not fit its config ({e})") from None
    return critic, tuple(hp.get("ext") or ()), str(hp.get("ext_type", "embed"))


def build_critic(cfg: SRNetConfig, n: int, device: torch.device) -> Critic | None:
    """The critic of a run over ``n`` points on ``device``: the fixed one of
    ``disc.from_run``, a fresh co-trained one, or None when ``sd`` is 0.

    Raises:
        KernelFailed: the fixed critic's file is missing, not an sd run's, or its critic
            does not fit this SRNet; the message names ``disc.from_run``.
    """
    if cfg.disc.from_run is not None:
        try:
            payload = load_sd_run(cfg.disc.from_run)
            net, ext, ext_type = fixed_critic(cfg, payload)
        except SrsweepError as e:
            raise KernelFailed(f"disc.from_run: {cfg.disc.from_run!r}: {e}") from None
        # never updated: no optimiser, and no gradients into its weights
        net = net.to(device).requires_grad_(False)
        return Critic(net, ext, ext_type, saved_hyperparams=payload["hyperparams"])
    if cfg.sd == 0:
        return None
    net = make_critic(cfg, n).to(device).requires_grad_(False)
    d = cfg.disc
    opt = Adam(net.parameters(), lr=d.lr, weight_decay=d.wd, betas=d.betas)
    return Critic(net, cfg.ext, cfg.ext_type, opt, funlib.FunctionLibrary(cfg.fun_lib))


def real_batch(cfg: SRNetConfig, c: Critic, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Library draws at the training inputs as critic input ``[R, lat, ...]``."""
    assert c.lib is not None
    n_real = cfg.disc.iters if cfg.iter_sample else 1
    lat = cfg.arch.lat_size
    draws = c.lib.sample(lat, x, iter_num=n_real, shuffle=cfg.shuffle, generator=gen)
    extras = [x.expand(n_real, lat, -1, -1) if n == "input" else draws[..., 1:] for n in c.ext]
    return critic_input(draws[..., 0], extras, c.ext_type)
