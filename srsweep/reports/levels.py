"""A hyperparameter's levels: its values, or quantile bins of a continuous one, in
numeric order, each with one colour that every figure of the report uses.

The grouped curves (``by_<key>``), the scatter and strip plots, the interactive page
and the trend-driver tests all read the same ``Levels``, so a value has the same
name, place in the legend and colour everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex

from srsweep.reports.frames import format_value

__all__ = [
    "Levels",
    "levels_of",
    "sort_key",
    "numeric_order",
    "is_numeric",
    "palette",
    "MISSING",
    "MAX_BINS",
]

MAX_BINS = 6  # a continuous hyperparameter is binned into at most this many quantiles
MISSING = "n/a"


def sort_key(value: Any) -> tuple[Any, ...]:
    """Numeric order for numbers (and tuples of them, element by element), then text;
    missing values last."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (3,)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return (0, float(value))
    if isinstance(value, tuple):
        return (1, tuple(sort_key(v) for v in value))
    return (2, str(value))


def numeric_order(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by their keys' values in numeric order (``sort_key``), stably."""
    if not keys or df.empty:
        return df
    order = sorted(range(len(df)), key=lambda i: tuple(sort_key(df[k].iloc[i]) for k in keys))
    return df.iloc[order]


def is_numeric(values: pd.Series) -> bool:
    """Whether a column holds plain numbers (booleans and tuples are categories)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def palette(n: int, ordered: bool) -> list[str]:
    """``n`` colours as hex: an ordered scale (viridis) for ordered levels, else
    distinct ones (tab10 without its grey, which marks runs left out of a legend)."""
    if ordered and n > 1:
        return [to_hex(colormaps["viridis"](x)) for x in np.linspace(0.0, 0.85, n)]
    if n <= 9:
        return [to_hex(colormaps["tab10"](i)) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:n]]
    if n <= 20:
        return [to_hex(colormaps["tab20"](i)) for i in range(n)]
    return [to_hex(colormaps["viridis"](x)) for x in np.linspace(0.0, 0.9, n)]


@dataclass(frozen=True)
class Levels:
    """The levels of one hyperparameter.

    ``order`` lists the level names in numeric order (``MISSING`` last, when some run
    lacks the key); ``edges`` are the quantile bin edges of a binned numeric key (None
    when each value is its own level); ``colours`` maps level name -> hex colour.
    """

    key: str
    order: tuple[str, ...]
    edges: tuple[float, ...] | None
    numeric: bool
    colours: dict[str, str]

    @property
    def binned(self) -> bool:
        return self.edges is not None

    def of(self, values: pd.Series) -> pd.Series:
        """The level name of each value (same index)."""
        if self.edges is not None:
            nums = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            # bin i holds (edges[i], edges[i + 1]]; the first bin also holds its left edge
            codes = np.searchsorted(np.asarray(self.edges[1:-1]), nums, side="left")
            names = np.asarray(self.order[: len(self.edges) - 1], dtype=object)[codes]
            names = np.where(np.isnan(nums), MISSING, names)
            return pd.Series(names, index=values.index, dtype=object)
        return values.map(_value_name).astype(object)


def _value_name(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format_value(value)


def _bin_names(edges: npt.NDArray[np.float64]) -> list[str]:
    lo = [format_value(float(e)) for e in edges[:-1]]
    hi = [format_value(float(e)) for e in edges[1:]]
    return [
        f"[{a}, {b}]" if i == 0 else f"({a}, {b}]"
        for i, (a, b) in enumerate(zip(lo, hi, strict=True))
    ]


def levels_of(values: pd.Series, key: str | None = None, max_bins: int = MAX_BINS) -> Levels:
    """The levels of a hyperparameter from the values the runs took.

    A numeric key with more than ``max_bins`` distinct values is cut at its quantiles
    into at most ``max_bins`` bins (fewer when quantiles coincide); any other key has a
    level per distinct value.

    Args:
        values: The key's value per run.
        key: Its name; default the Series' name.
        max_bins: Most bins for a continuous key.
    """
    name = str(key if key is not None else values.name)
    present = values.dropna()
    missing = len(present) < len(values)
    numeric = is_numeric(values) and len(present) > 0
    edges: tuple[float, ...] | None = None
    if numeric and present.nunique() > max_bins:
        qs = np.quantile(present.to_numpy(dtype=float), np.linspace(0.0, 1.0, max_bins + 1))
        cuts = np.unique(qs)
        edges = tuple(float(e) for e in cuts)
        order = _bin_names(cuts)
    else:
        distinct = sorted(dict.fromkeys(present), key=sort_key)
        order = list(dict.fromkeys(_value_name(v) for v in distinct))
    if missing:
        order.append(MISSING)
    colours = dict(zip(order, palette(len(order), ordered=numeric), strict=True))
    if missing:
        colours[MISSING] = "#999999"
    return Levels(key=name, order=tuple(order), edges=edges, numeric=numeric, colours=colours)
