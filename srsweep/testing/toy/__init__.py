"""A toy kernel for srsweep's own tests, laid out as a new kernel is: its record here,
a torch-free ``config.py``, ``solo.py`` and ``packed.py`` (a one-by-one stand-in).

It "trains" a scalar ``w`` towards ``target`` and logs ``loss``, in a few milliseconds
and without torch; ``fail_at`` and ``nan_at`` make it fail on purpose, ``sleep`` slows
each step for signal tests. It is registered for tests only, through the registry's
``SRSWEEP_KERNELS`` hook (tests/conftest.py sets ``SRSWEEP_KERNELS=toy=srsweep.testing.toy``),
so a user's ``srsweep kernels`` never lists it.
"""

from __future__ import annotations

from srsweep.kernels import Entry
from srsweep.kernels import Examples
from srsweep.kernels import Kernel
from srsweep.testing.toy.config import ToyConfig
from srsweep.testing.toy.config import pack_key

__all__ = ["KERNEL", "ToyConfig"]

KERNEL = Kernel(
    name="toy",
    config=ToyConfig,
    train=Entry("srsweep.testing.toy.solo", "train"),
    metric="loss",
    goal="minimize",
    logs=(
        "loss",
        "w",
    ),
    curve="loss",
    summary="test kernel: a scalar pulled to a target",
    pack_key=pack_key,
    train_packed=Entry("srsweep.testing.toy.packed", "train_packed"),
    examples=Examples(
        smoke={"steps": 6},
        nonfinite={"nan_at": 3},
        vary=({"seed": 1, "target": 2.0}, {"w0": 0.5, "opt": {"lr": 0.3}}),
        other_key={"steps": 3},
        rtol=0.0,  # the stand-in trains each trial exactly as alone
        atol=0.0,
    ),
)
