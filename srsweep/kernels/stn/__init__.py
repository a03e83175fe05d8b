"""``stn``: a self-tuning network learns y = x² while tuning its own training range
(seeds 000, 001).

Training inputs are x = t·u, u ~ U(-1, 1), where the half-width t ("x_range") is a
hyperparameter in [x_min, x_max]. A hypernetwork whose layers are affine in the perturbed,
unconstrained hyperparameter stands in for the best-response weights; cycles of weight
steps (on the training range) and hyper steps (on U(-val_range, val_range)) move t and its
perturbation scale, until the sup-norm distance to x² on a grid falls below a threshold
(Weinan et al.: a depth L+1, width M+2 ReLU net gets within 2^(-2L)).

Follows the TF2 port the seeds import (``self_tuning_nets``), Keras' Adam included, as
``../shared/reference/kernels.md`` section (a) describes it; seeds
``../shared/seeds/000_b12d63959087e50e.txt`` and ``001_16f326b4a0983015.txt``. Deviation:
the "unit" gates (per unit, as the official STN) keep the port's N(0, 0.1) gate init and
have no learnable base scale.

Modules: ``config`` (``STNConfig``, ``pack_key``; no torch), ``solo`` (``train``, one
trial), ``packed`` (``train_packed``, many trials as one stacked model, built in
``stack`` and ``layout``), and what both paths share: ``hypernet`` (the hypernetwork,
Keras' Adam, the x_range map, the entropy and the noise draws) and ``records`` (what a
cycle records, logs and saves, and the error of a non-finite one). This record imports
no torch; the training paths load on their first call.
"""

from __future__ import annotations

from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels.stn.config import STNConfig
from srsweep.kernels.stn.config import pack_key

__all__ = ["KERNEL", "STNConfig", "pack_key"]

# 80 cycles on CPU, past the first block of noise draws (64 cycles); dist_threshold 0
# so that no trial converges early
_SMOKE = {"device": "cpu", "max_cycles": 80, "dist_threshold": 0.0}

KERNEL = Kernel(
    name="stn",
    config=STNConfig,
    train=Entry("srsweep.kernels.stn.solo", "train"),
    metric="dist",
    goal="minimize",
    logs=(
        "boundary",
        "converged",
        "cycle",
        "dist",
        "dist_clean",
        "scale",
        "train_loss",
        "val_loss",
        "x_range",
    ),
    curve="x_range",
    summary="self-tuning network: hypertrains the training range x_range of y = x^2 "
    "(seeds 000, 001)",
    pack_key=pack_key,
    train_packed=Entry("srsweep.kernels.stn.packed", "train_packed"),
    examples=Examples(
        smoke=_SMOKE,
        # the weights' Adam at lr 1e30 overflows in the first warm-up steps; same pack key
        nonfinite={**_SMOKE, "train_lr": 1e30},
        # what the study sweeps (hyper lr, init x_range, seed) and what else a pack lets
        # differ: the other rates, Adam eps, entropy weight, scale, ranges, budget, cadence
        vary=(
            {**_SMOKE, "seed": 47, "hyper_lr": 0.01, "init_x_range": 3.0, "log_every": 5},
            {
                **_SMOKE,
                "seed": 3,
                "entropy_weight": 0.01,
                "init_scale": 0.3,
                "adam_eps": 1e-8,
                "scale_lr": 0.01,
                "train_lr": 0.02,
                "max_cycles": 15,
            },
            {
                **_SMOKE,
                "seed": 4,
                "x_min": 0.1,
                "x_max": 5.0,
                "eval_range": 1.5,
                "val_range": 1.0,
                "log_every": 4,
            },
        ),
        other_key={**_SMOKE, "M": 3},
        # float64 throughout: packed and solo differ by rounding only
        rtol=1e-9,
        atol=1e-12,
    ),
)
