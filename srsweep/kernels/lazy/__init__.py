"""``lazy``: lazy training of an α-scaled ReLU MLP on a 1-D regression (seed 002).

The model α·(f_w(x) − f_w0(x)), f_w0 a frozen copy of the initial net, starts at zero and
is trained with plain SGD on the MSE at lr = lr0/α² (Chizat, Oyallon & Bach 2019). As α
grows the weights move less (∝ 1/α) while the loss still falls: the lazy regime. Logged
at step i: the loss of SGD step i (before its update, the notebook's ``losses[i]``) and
the relative weight movement after it; a weight-vector history is saved for the
loss-landscape analysis (seed 004).

Follows the course notebook "TP3 Lazy training" and its ``tp3_utils`` helpers as
``../shared/reference/kernels.md`` section (b) describes them; seed
``../shared/seeds/002_fa2470e186f4fadc.txt``. Deviation: movement is measured from the
initial weights; the notebook's history (and so its reference point) starts after step 0.

Modules: ``config`` (``LazyConfig``, ``pack_key``; no torch), ``solo`` (``train``, one
trial), ``packed`` (``train_packed``, many trials as one stacked model), ``model`` (what
both share: the MLPs, data, precision, batch order, snapshot stride, non-finite check)
and ``landscape`` (``problem``: a saved run for ``srsweep.analysis.landscape``). This
record imports no torch; the training paths load on their first call.
"""

from __future__ import annotations

from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels.lazy.config import LazyConfig
from srsweep.kernels.lazy.config import pack_key

__all__ = ["KERNEL", "LazyConfig", "pack_key"]

# 150 SGD steps of the notebook's deep width-8 net on minibatches of 4 of its 10 points
# (so the seeded batch order is exercised), logged every 20, snapshots every 40
_SMOKE = {"device": "cpu", "steps": 150, "log_every": 20, "history_every": 40, "batch_size": 4}

KERNEL = Kernel(
    name="lazy",
    config=LazyConfig,
    train=Entry("srsweep.kernels.lazy.solo", "train"),
    metric="loss",
    goal="minimize",
    logs=(
        "loss",
        "rel_move_all",
        "rel_move_last",
        "rel_move_last_weight",
    ),
    curve="loss",
    summary="lazy training: alpha-scaled ReLU MLP alpha*(f - f0) with SGD at lr0/alpha^2 "
    "(seed 002)",
    pack_key=pack_key,
    train_packed=Entry("srsweep.kernels.lazy.packed", "train_packed"),
    landscape=Entry("srsweep.kernels.lazy.landscape", "problem"),
    examples=Examples(
        smoke=_SMOKE,
        # SGD at lr 1e6 overflows within a few steps; same pack key as smoke
        nonfinite={**_SMOKE, "lr0": 1e6},
        # what a pack lets differ: seed, α and lr0 (lr = lr0/α²), target, noise, x range,
        # history; α stays <= 1e3 so that "auto" keeps float32 and the pack key
        vary=(
            {**_SMOKE, "seed": 1, "alpha": 100.0, "lr0": 0.05, "target": "simple"},
            {
                **_SMOKE,
                "seed": 2,
                "alpha": 10.0,
                "lr0": 0.002,
                "x_min": -2.0,
                "x_max": 0.5,
                "noise": 0.1,
                "history_every": 7,
            },
        ),
        other_key={**_SMOKE, "width": 9},
        # float32 (what "auto" picks here): α amplifies the rounding of f_w − f_w0
        rtol=2e-3,
        atol=2e-6,
    ),
)
