"""The seed studies' datasets, regenerated deterministically instead of read from files.

The original ``data_1k/`` files were drawn with numpy's legacy global RNG seeded once
with 0 and a fixed order of draws; replaying that order on a private ``RandomState(0)``
reproduces them bit for bit (X10[0] = (1.0367, -2.3828)) without touching numpy's
global state. Facts: ``../shared/reference/symrep.md`` section 2.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srsweep.errors import NotFoundError

__all__ = ["VARIABLES", "TARGETS", "inputs", "masks", "targets"]

# Draw order of the original generator script: (name, columns). Every draw has 1000 rows.
_DRAWS = (
    ("X01", 2),
    ("X02", 2),
    ("X03", 3),
    ("X04", 3),
    ("X05", 5),
    ("X00", 2),
    ("X06", 8),
    ("X07", 2),
    ("X09", 2),
    ("X10", 2),
)
_ROWS = 1000
_GRID_POINTS = 700  # X11 had 1000 points until 2022-09-13 and 700 afterwards (section 11)

VARIABLES = tuple(sorted([name for name, _ in _DRAWS] + ["X11", "X12"]))
TARGETS = ("F07", "F11", "G07", "G11")


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    # Cached arrays are shared between callers; a write would silently corrupt them.
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=1)
def _normal_draws() -> dict[str, NDArray[np.float64]]:
    rng = np.random.RandomState(0)
    return {name: _frozen(rng.normal(size=(_ROWS, cols))) for name, cols in _DRAWS}


@functools.cache
def inputs(var: str) -> NDArray[np.float64]:
    """The input matrix of a data variable, as the original files stored it.

    Args:
        var: one of ``VARIABLES``, e.g. ``"X10"``.

    Returns:
        A read-only float64 array of shape ``[rows, columns]`` (X10: ``[1000, 2]``,
        X11: ``[700, 1]``). Callers convert to float32 as the original loader did.

    Raises:
        NotFoundError: ``var`` is not a known variable.
    """
    if var == "X11":
        return _frozen(np.linspace(-3.0, 3.0, _GRID_POINTS, endpoint=False)[:, None])
    if var == "X12":
        return inputs("X07")  # X12 was saved as a copy of X07
    draws = _normal_draws()
    if var not in draws:
        raise NotFoundError(f"unknown input variable {var!r}; known: {', '.join(VARIABLES)}")
    return draws[var]


@functools.lru_cache(maxsize=1)
def _shuffled_rows() -> NDArray[np.int64]:
    rows = np.arange(_ROWS)
    np.random.RandomState(0).shuffle(rows)
    return rows


@functools.cache
def masks(var: str) -> dict[str, NDArray[np.int64]]:
    """Train/val/test row indices of a data variable (int64, read-only).

    All 1000-row variables share one mask: ``RandomState(0).shuffle(arange(1000))``
    split 700/200/100 (first train rows 993, 859, 298, 553, 672). Only X00, X01,
    X06-X10 and X12 are documented to use it; X02-X05 get it too. X11 has no mask
    file: every row is a training row and val/test are empty.

    Raises:
        NotFoundError: ``var`` is not a known variable.
    """
    n = inputs(var).shape[0]
    if var == "X11":
        return {
            "train": _frozen(np.arange(n, dtype=np.int64)),
            "val": _frozen(np.zeros(0, dtype=np.int64)),
            "test": _frozen(np.zeros(0, dtype=np.int64)),
        }
    rows = _shuffled_rows().astype(np.int64)
    return {
        "train": _frozen(rows[:700].copy()),
        "val": _frozen(rows[700:900].copy()),
        "test": _frozen(rows[900:].copy()),
    }


def _parabola(x: NDArray[np.float64], a: float, shift: float, offset: float) -> NDArray[np.float64]:
    return a * (x + shift) ** 2 + offset


@functools.cache
def targets(var: str) -> NDArray[np.float64]:
    """Regression targets of the later SRNet studies, one row per input row.

    ``G07`` = [2.7 x0^2, 5 cos(3 x1), 4.5 x0 x1] on X07 and ``F07`` their sum;
    ``G11`` = the three fixed F11_v1 parabolas on X11 and ``F11`` = g0 g1 + sin(g2).

    Returns:
        A read-only float64 array: ``[rows, latents]`` for ``G*``, ``[rows, 1]`` for ``F*``.

    Raises:
        NotFoundError: ``var`` is not one of ``TARGETS``.
    """
    if var == "G07":
        x = inputs("X07")
        g = np.stack([2.7 * x[:, 0] ** 2, 5.0 * np.cos(3.0 * x[:, 1]), 4.5 * x[:, 0] * x[:, 1]], 1)
        return _frozen(g)
    if var == "G11":
        x = inputs("X11")[:, 0]
        g = np.stack(
            [
                _parabola(x, -0.08, 0.165, -0.21),
                _parabola(x, 0.0785, -0.63, -0.252),
                _parabola(x, 0.0895, 0.21, -0.0375),
            ],
            1,
        )
        return _frozen(g)
    if var == "F07":
        return _frozen(targets("G07").sum(axis=1, keepdims=True))
    if var == "F11":
        g = targets("G11")
        return _frozen((g[:, 0] * g[:, 1] + np.sin(g[:, 2]))[:, None])
    raise NotFoundError(f"unknown target variable {var!r}; known: {', '.join(TARGETS)}")
