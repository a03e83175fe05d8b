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
"ghost" optimiser). Facts: ``../shared/reference/symrep.md`` sections 2, 3, 5, 7-9.

The modules: ``config.py`` (the config, its rules and the pack key; torch-free),
``from_run.py`` (``disc.from_run`` resolved to the sd run's model file through the
caller's ledger lookup; torch-free), ``dsn.py`` (the SRNet and its DSN halves),
``critic.py`` (co-trained and fixed critics), ``shared.py`` (model, losses, checks and
the saved state, for both trainers), ``solo.py`` (``train``), ``packed.py``
(``train_packed``, with ``stack.py``'s stacked model). This record imports neither
trainer: they are ``Entry`` points, so reading it costs no torch import.
"""

from __future__ import annotations

from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels.srnet.config import ArchConfig
from srsweep.kernels.srnet.config import DiscConfig
from srsweep.kernels.srnet.config import HidKwargs
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.config import pack_key
from srsweep.kernels.srnet.from_run import resolve

__all__ = ["HidKwargs", "ArchConfig", "DiscConfig", "SRNetConfig", "KERNEL"]

# The 184 layout on a tiny budget (DSN 2x8 first half, 2x8 critic, 2 critic steps):
# about a second on one CPU thread.
_SMOKE = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "l1": 1e-9,  # on in every example: which regularisers are on is in the pack key
    "arch": {"hid_num": [2, 0], "hid_size": 8},
    "disc": {"hid_num": 2, "hid_size": 8, "iters": 2},
}

KERNEL = Kernel(
    name="srnet",
    config=SRNetConfig,
    train=Entry("srsweep.kernels.srnet.solo", "train"),
    metric="min_corr",
    goal="maximize",
    logs=(
        "critic_acc",
        "critic_loss",
        "disc_loss",
        "disc_preds",
        "epoch",
        "min_corr",
        "pred_loss",
        "sd_share",
        "time",
        "train_loss",
        "val_loss",
    ),
    curve="min_corr",
    summary="SRNet/DSN regression (X07 -> F07) with a symbolic discriminator as a "
    "regulariser (seed 003, study 184)",
    pack_key=pack_key,
    train_packed=Entry("srsweep.kernels.srnet.packed", "train_packed"),
    resolve=resolve,
    examples=Examples(
        smoke=_SMOKE,
        nonfinite={**_SMOKE, "lr": 1e30},  # the SRNet's weights overflow in the first steps
        # on top of smoke: what a pack lets differ (seeds, learning rates, phi, weights)
        vary=(
            {"seed": 1, "lr": 1e-3, "sd_fun": "sigmoid", "l1": 0.01},
            {
                "seed": 2,
                "sd": 0.5,
                "sd_fun": "logsigmoid",
                "disc.lr": 1e-3,
                "disc.betas": [0.5, 0.9],
            },
        ),
        other_key={**_SMOKE, "arch": {"hid_num": [2, 0], "hid_size": 16}},
        rtol=1e-4,  # the packed tests' tolerances (assert_same_run)
        atol=1e-6,
    ),
)
