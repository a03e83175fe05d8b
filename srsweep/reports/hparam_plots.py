"""Figures of the metric against the hyperparameters: one scatter (or strip and box)
plot per key, parallel coordinates of every run, and the importance bars.

Like ``plots``, these draw frames and compute nothing beyond positions; colours and
level order come from ``levels.Levels``, so a value looks the same in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from srsweep.reports.frames import format_value
from srsweep.reports.levels import MISSING
from srsweep.reports.levels import Levels
from srsweep.reports.plots import chance_line

__all__ = ["metric_plot", "parallel_plot", "importance_plot", "axis_positions"]

JITTER = 0.18  # half-width of a strip's horizontal scatter, in level spacings


def _frame(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def metric_plot(
    runs_df: pd.DataFrame,
    key: str,
    metric: str,
    levels: Levels,
    *,
    log: bool = False,
    chance: float | None = None,
) -> Figure:
    """The final ``metric`` of every run against one hyperparameter.

    A numeric key is a scatter (log x axis with ``log``), each point in the colour of
    its level (its quantile bin when the key is binned); any other key is a strip of
    points per value with a box of its quartiles, values in level order.

    Args:
        runs_df: A frame from ``frames.runs_frame`` with ``key`` and
            ``summary.<metric>``; runs without a value are left out.
        key: The hyperparameter.
        metric: The summary metric, without ``summary.``.
        levels: The key's levels.
        log: Draw the key on a log axis (its spec distribution is logarithmic).
        chance: Draw a labelled chance line at this level.

    Returns:
        The figure.
    """
    y = pd.to_numeric(runs_df[f"summary.{metric}"], errors="coerce")
    df = runs_df.assign(_y=y).dropna(subset=["_y"])
    level = levels.of(df[key])
    fig, ax = _frame()
    ax.set_ylabel(f"final {metric}")
    ax.set_title(f"{metric} by {key}")
    present = [lv for lv in levels.order if (level == lv).any()]
    if levels.numeric:
        for lv in present:
            sub = df[(level == lv).to_numpy()]
            ax.scatter(
                pd.to_numeric(sub[key]),
                sub["_y"],
                s=22,
                color=levels.colours[lv],
                label=f"{key}={lv}" if levels.binned else None,
                edgecolors="none",
            )
        if log:
            ax.set_xscale("log")
        if levels.binned:
            ax.legend(fontsize="small", frameon=False)
    else:
        pos = {lv: i for i, lv in enumerate(present)}
        rng = np.random.default_rng(0)  # jitter only: fixed so the figure is reproducible
        groups = [df["_y"][(level == lv).to_numpy()].to_numpy() for lv in present]
        ax.boxplot(
            groups,
            positions=range(len(present)),
            widths=0.5,
            showfliers=False,
            medianprops={"color": "0.2"},
        )
        for lv, ys in zip(present, groups, strict=True):
            x = pos[lv] + rng.uniform(-JITTER, JITTER, len(ys))
            ax.scatter(x, ys, s=22, color=levels.colours[lv], edgecolors="none", zorder=3)
        ax.set_xticks(range(len(present)), present)
    ax.set_xlabel(key)
    chance_line(ax, chance)
    return fig


def axis_positions(
    values: pd.Series, levels: Levels, log: bool
) -> tuple[npt.NDArray[np.float64], list[tuple[float, str]]]:
    """A key's values as positions in [0, 1] for parallel coordinates, and tick marks
    (position, text): numbers scaled linearly (log10 with ``log``) from min to max,
    other values spaced evenly in level order."""
    if levels.numeric:
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        t = np.log10(x) if log else x
        lo, hi = np.nanmin(t), np.nanmax(t)
        pos = (t - lo) / (hi - lo) if hi > lo else np.full(len(t), 0.5)
        # ticks at each value, or at the bin edges of a binned key
        marks = np.asarray(levels.edges if levels.binned else np.unique(x[~np.isnan(x)]))
        tm = np.log10(marks) if log else marks
        spots = (tm - lo) / (hi - lo) if hi > lo else np.full(len(tm), 0.5)
        ticks = [(float(p), format_value(float(v))) for p, v in zip(spots, marks, strict=True)]
        return np.nan_to_num(pos, nan=0.0), ticks
    order = [lv for lv in levels.order if lv != MISSING] + [MISSING]
    names = levels.of(values)
    present = [lv for lv in order if (names == lv).any()]
    spots = np.linspace(0.0, 1.0, len(present)) if len(present) > 1 else np.array([0.5])
    where = dict(zip(present, spots, strict=True))
    return names.map(where).to_numpy(dtype=float), [(where[lv], lv) for lv in present]


def parallel_plot(
    runs_df: pd.DataFrame,
    keys: Sequence[str],
    metric: str,
    levels: Mapping[str, Levels],
    log_keys: set[str],
    goal: str,
) -> Figure:
    """Parallel coordinates: one line per run through its value of every key and its
    final ``metric`` (the last axis), coloured by the metric (better on top).

    Args:
        runs_df: A frame from ``frames.runs_frame``; runs without a value of the
            metric are left out.
        keys: The hyperparameters, in axis order.
        metric: The summary metric, without ``summary.``; ``goal`` its direction.
        levels: Levels per key (category order).
        log_keys: Keys drawn on a log scale.

    Returns:
        The figure, with a colour bar of the metric.
    """
    y = pd.to_numeric(runs_df[f"summary.{metric}"], errors="coerce")
    df = runs_df.assign(_y=y).dropna(subset=["_y"])
    # Better runs last, so they are drawn on top.
    df = df.sort_values("_y", ascending=goal == "maximize", kind="stable")
    cols, ticks = [], []
    for key in keys:
        pos, tk = axis_positions(df[key], levels[key], key in log_keys)
        cols.append(pos)
        ticks.append(tk)
    lo, hi = float(df["_y"].min()), float(df["_y"].max())
    cols.append((df["_y"].to_numpy() - lo) / (hi - lo) if hi > lo else np.full(len(df), 0.5))
    ticks.append(
        [(0.0, format_value(lo)), (1.0, format_value(hi))] if hi > lo else [(0.5, format_value(lo))]
    )
    names = [*keys, metric]
    fig, ax = _frame(width=max(7.0, 1.6 * len(names)), height=4.8)
    ax.grid(False)
    xs = np.arange(len(names), dtype=float)
    segments = (
        np.stack([np.column_stack([xs, row]) for row in np.column_stack(cols)]) if len(df) else []
    )
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    lines = LineCollection(
        segments, cmap=colormaps["viridis"], norm=norm, linewidths=1.0, alpha=0.7
    )
    lines.set_array(df["_y"].to_numpy())
    ax.add_collection(lines)
    for x, tk in zip(xs, ticks, strict=True):
        ax.axvline(x, color="0.3", linewidth=0.8)
        for p, text in tk:
            ax.annotate(
                text,
                (x, p),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize="x-small",
                va="center",
            )
    ax.set_xticks(xs, names, rotation=20, ha="right")
    ax.set_xlim(-0.1, len(names) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    ax.set_title(f"every run's hyperparameters and final {metric}")
    fig.colorbar(lines, ax=ax, label=f"final {metric}")
    return fig


def importance_plot(table: pd.DataFrame, metric: str) -> Figure:
    """Horizontal bars of each key's importance with its spread (±1 std), most
    important at the top."""
    fig, ax = _frame(width=7.0, height=1.2 + 0.4 * len(table))
    rows = table.iloc[::-1]
    ax.barh(rows["key"], rows["importance"], xerr=rows["std"], color="#1f77b4", capsize=3)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlabel(f"share of {metric}'s variance lost when the key is shuffled")
    ax.set_title(f"importance for {metric} (permutation, random forest)")
    return fig
