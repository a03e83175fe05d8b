"""What ``sd``'s solo and packed trainers share (seed 003): the training inputs, the
critic, one epoch's critic data, and how an epoch's records are checked and logged.

``solo.train`` uses these directly; ``packed`` builds its critics with ``make_critic``,
logs with ``log_epochs`` and mirrors ``make_batch``'s draws in ``draws.PackDraws``, so
both trainers log the same things from the same random streams. Both save a trial as
``saved_state`` does, so a trial interrupted in a pack can resume alone
(``resume_from``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import torch

from srsweep.errors import KernelFailed
from srsweep.kernels.common import data
from srsweep.kernels.common.nets import SDNet
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import mlp_apply
from srsweep.kernels.common.nets import random_mlp
from srsweep.kernels.common.saved import to_numpy
from srsweep.kernels.common.saved import to_tensors

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.common.funlib import FunctionLibrary
    from srsweep.kernels.common.optim import Adam
    from srsweep.kernels.sd.config import SDConfig

__all__ = [
    "DRAWS",
    "INIT",
    "draws_generator",
    "log_epochs",
    "make_batch",
    "make_critic",
    "resume_from",
    "saved_state",
    "stream_seed",
    "train_inputs",
]


def train_inputs(cfg: SDConfig, device: torch.device) -> torch.Tensor:
    """The N training inputs ``[N, in_size]`` of ``cfg.in_var`` (its train mask's rows,
    in mask order, unsorted) on ``device``."""
    rows = data.masks(cfg.in_var)["train"]
    return torch.as_tensor(
        data.inputs(cfg.in_var)[rows, : cfg.arch.in_size], dtype=torch.float32, device=device
    )


# A run's seed gives each use its own stream, as NumPy's SeedSequence.spawn derives
# independent children: seeding both with the seed itself made the first per-epoch
# generators rescaled copies of the critic's initial weights (one uniform stream read twice).
INIT, DRAWS = 0, 1  # the child of the seed for the critic's init, for the per-epoch draws


def stream_seed(seed: int, use: int) -> int:
    """The torch seed of stream ``use`` (``INIT`` or ``DRAWS``) of a run's ``seed``: the
    64-bit state of ``SeedSequence(seed).spawn(2)[use]``."""
    child = np.random.SeedSequence(seed).spawn(2)[use]
    return int(child.generate_state(1, dtype=np.uint64)[0])


def draws_generator(cfg: SDConfig) -> torch.Generator:
    """The CPU generator of every per-epoch draw of a run (generators, library samples,
    penalty mixes): on CPU, the same ones whatever device trains the critic."""
    return torch.Generator().manual_seed(stream_seed(cfg.seed, DRAWS))


def make_critic(cfg: SDConfig, n_points: int) -> SDNet:
    """The critic for ``n_points`` inputs, initialised from the ``INIT`` stream of
    ``cfg.seed`` (global RNG untouched, built on CPU so every device starts from the
    same weights)."""
    ext = cfg.ext_channels
    embed = cfg.ext_type == "embed"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, INIT))
        return SDNet(
            n_points if embed else n_points * (1 + ext),
            cfg.disc.hid_num,
            cfg.disc.hid_size,
            emb_size=1 + ext if embed else None,
        )


@torch.no_grad()
def make_batch(
    cfg: SDConfig, lib: FunctionLibrary, x: torch.Tensor, gen: torch.Generator
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
    one. Shared by ``solo.train`` and the packed trainer, so both log the same thing.

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


def saved_state(
    cfg: SDConfig,
    disc_state: dict[str, torch.Tensor],
    opt_state: dict[str, Any],
    gen: torch.Generator,
    tot_accs: list[float],
    times: list[float],
) -> dict[str, Any]:
    """What an ``sd`` model file holds of a trial (solo or packed): the critic and its
    optimiser, the accuracies and times so far, and the generator's state to resume."""
    state: dict[str, Any] = to_numpy(
        {
            "disc_state": disc_state,
            "disc_opt_state": opt_state,
            "gen_state": gen.get_state(),
            "tot_accs": list(tot_accs),
            "times": list(times),
            "fun_lib": cfg.fun_lib,
            "in_var": cfg.in_var,
        }
    )
    return state


def resume_from(
    state: dict[str, Any],
    critic: torch.nn.Module,
    opt: Adam,
    gen: torch.Generator,
    tot_accs: list[float],
    times: list[float],
) -> int:
    """Load a ``saved_state`` into a fresh trial's critic, optimiser, generator and lists;
    returns the last epoch it had done."""
    critic.load_state_dict(to_tensors(state["disc_state"]))
    opt.load_state_dict(to_tensors(state["disc_opt_state"]))
    gen.set_state(torch.from_numpy(state["gen_state"]))
    tot_accs[:] = [float(a) for a in state["tot_accs"]]
    times[:] = [float(t) for t in state["times"]]
    return int(state["resume_step"])
