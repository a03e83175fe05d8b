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

Modules: ``config`` (the config dataclasses, their checks, ``pack_key``; no torch),
``model`` (training inputs, critic, per-epoch batch, logging: what both trainers share),
``solo`` (``train``: one trial), ``packed`` (``train_packed``: trials batched into one
model) and ``draws`` (the pack's per-epoch random draws). This record imports no torch:
the trainers load on their first call.
"""

from __future__ import annotations

from typing import Any

from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels.sd.config import ArchConfig
from srsweep.kernels.sd.config import DiscConfig
from srsweep.kernels.sd.config import SDConfig
from srsweep.kernels.sd.config import pack_key

__all__ = ["ArchConfig", "DiscConfig", "SDConfig", "KERNEL"]


def _smoke(**over: Any) -> dict[str, Any]:
    """A tiny run (2x16 critic, 3 latents, 20 epochs logged 5 times) with ``over`` merged
    in, sections key by key."""
    base: dict[str, Any] = {
        "device": "cpu",
        "epochs": 20,
        "log_freq": 5,
        "arch": {"lat_size": 3},
        "disc": {"hid_num": 2, "hid_size": 16, "iters": 2},
    }
    return {**base, **over, **{s: {**base[s], **over.get(s, {})} for s in ("arch", "disc")}}


KERNEL = Kernel(
    name="sd",
    config=SDConfig,
    train=Entry("srsweep.kernels.sd.solo", "train"),
    metric="avg_acc",
    goal="maximize",
    logs=(
        "acc",
        "avg_acc",
        "epoch",
        "gp",
        "loss",
        "loss_fake",
        "loss_real",
        "time",
    ),
    curve="acc",
    summary="symbolic discriminator: critic separating library curves from "
    "untrained-MLP latents (seed 003)",
    pack_key=pack_key,
    train_packed=Entry("srsweep.kernels.sd.packed", "train_packed"),
    examples=Examples(
        smoke=_smoke(),
        # Adam steps of ~1e38 overflow the critic's weights within a couple of epochs
        nonfinite=_smoke(disc={"lr": 1e38}),
        # what a pack lets differ: seed, optimiser, penalty (0 too), loss, and lat_size
        # and iters (padded samples, masked critic steps)
        vary=(
            _smoke(seed=1, arch={"lat_size": 1}, disc={"iters": 3, "gp": 0.0, "loss": "bce"}),
            _smoke(
                seed=2,
                arch={"lat_size": 5},
                disc={"iters": 1, "gp": 1e-3, "lr": 1e-3, "wd": 1e-3, "betas": [0.5, 0.9]},
            ),
        ),
        other_key=_smoke(disc={"hid_num": 3}),
        # as tests/kernels/sd/test_sd_packed.py compares losses (accuracies are exact)
        rtol=1e-4,
        atol=1e-5,
    ),
)
