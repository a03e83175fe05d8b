"""Draw the report's figures from the frames in ``frames.py``; nothing is computed here
beyond a group mean.

Figures are built with ``matplotlib.figure.Figure`` directly rather than pyplot: no
backend has to be chosen, nothing is kept in pyplot's global figure list, and the
module is safe to use from a headless agent or a thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from srsweep import store
from srsweep.reports.frames import format_value

__all__ = ["comparison_plot", "grouped_plot", "save"]

BAND_ALPHA = 0.25  # as the study's uncertainty plots (symrep §10)
CHANCE = 0.5
OTHER_COLOUR = "0.6"
# Past this length a legend beside the axes squeezes them; put it underneath instead.
_LONG_LABEL = 38


def _looks_like_accuracy(metric: str, values: pd.Series) -> bool:
    v = values.dropna()
    return "acc" in metric.lower() and len(v) > 0 and v.min() >= 0.0 and v.max() <= 1.0


def _colours(n: int) -> list[Any]:
    # Integer arguments index a qualitative map's colour list directly. tab10's grey
    # (index 7) is skipped: grey is for the runs left out of the legend.
    if n <= 9:
        return [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:n]]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, n)]


def _figure(labels: Sequence[str], title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    """A figure sized so that its legend, beside or below the axes, fits."""
    below = any(len(lab) > _LONG_LABEL for lab in labels)
    if below:
        height = 4.5 + 0.22 * len(labels)
    else:
        height = max(4.5, 1.2 + 0.24 * len(labels))
    fig = Figure(figsize=(10, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    return fig, ax


def _legend(fig: Figure, handles: Sequence[Any], labels: Sequence[str]) -> None:
    if not labels:
        return
    if any(len(lab) > _LONG_LABEL for lab in labels):
        fig.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    else:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small", frameon=False)


def _chance_line(ax: Any, metric: str, values: pd.Series) -> None:
    if _looks_like_accuracy(metric, values):
        ax.axhline(CHANCE, color="0.3", linestyle="--", linewidth=1.0)


def comparison_plot(
    smoothed_df: pd.DataFrame,
    labels: Mapping[str, str] | pd.Series,
    metric: str,
    *,
    band: bool,
    title: str = "",
    highlight: Sequence[str] | None = None,
    xlabel: str = "step",
) -> Figure:
    """One smoothed curve per run, optionally with its ±1 std band.

    Args:
        smoothed_df: A frame from ``frames.smooth`` (``<metric>_smooth``, ``_std``).
        labels: Legend label per run id; runs without one use their id.
        metric: The raw metric that was smoothed, e.g. ``"acc"``.
        band: Shade ±1 population std of the raw values in each window.
        title: Axes title.
        highlight: When given, only these runs are coloured and in the legend; the
            others are drawn thin and grey (for sweeps with many runs).
        xlabel: Label of the step axis, e.g. ``"epoch"``.

    Returns:
        The figure: one line per run, plus a dashed chance line at 0.5 when the metric
        looks like an accuracy (name contains "acc", values in [0, 1]).
    """
    mean_col, std_col = f"{metric}_smooth", f"{metric}_std"
    groups = list(smoothed_df.groupby("run_id", sort=False))
    ids = [rid for rid, _ in groups]
    shown = ids if highlight is None else [rid for rid in highlight if rid in ids]
    colour = dict(zip(shown, _colours(len(shown)), strict=True))
    legend = [str(labels.get(rid, rid)) for rid in shown]
    fig, ax = _figure(legend, title, xlabel, f"smoothed {metric}")
    handles = {}
    # Grey runs first so the coloured ones are drawn on top of them.
    for rid, g in sorted(groups, key=lambda item: item[0] in colour):
        g = g.dropna(subset=[mean_col]).sort_values("step", kind="stable")
        x, y = g["step"].to_numpy(), g[mean_col].to_numpy()
        c, lw = (colour[rid], 1.4) if rid in colour else (OTHER_COLOUR, 0.7)
        (handles[rid],) = ax.plot(x, y, color=c, linewidth=lw)
        if band and rid in colour:
            sd = g[std_col].to_numpy()
            ax.fill_between(x, y - sd, y + sd, color=c, alpha=BAND_ALPHA, linewidth=0)
    _chance_line(ax, metric, smoothed_df[mean_col])
    # Legend in the order asked for (best first when highlighting), not drawing order.
    legend_handles = [handles[rid] for rid in shown]
    others = [rid for rid in ids if rid not in colour]
    if others:
        legend_handles.append(handles[others[0]])
        legend.append(f"{len(others)} other runs")
    _legend(fig, legend_handles, legend)
    return fig


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def grouped_plot(
    smoothed_df: pd.DataFrame,
    runs_df: pd.DataFrame,
    key: str,
    metric: str,
    *,
    band: bool,
    title: str = "",
    xlabel: str = "step",
) -> Figure:
    """Curves coloured by the value of one hyperparameter, with each group's mean.

    Every run is a thin line in its group's colour; each group's mean over its runs
    at each step is a thick line with one legend entry ``"<key>=<value> (n=<runs>)"``.
    With ``band``, the mean is shaded ±1 std across the group's runs (groups of two
    or more). Numeric values get an ordered colour scale, others distinct colours.

    Args:
        smoothed_df: A frame from ``frames.smooth``.
        runs_df: A frame from ``frames.runs_frame`` holding ``key``.
        key: The hyperparameter column to group by.
        metric: The raw metric that was smoothed.
        band: Shade the spread across each group's runs.
        title: Axes title; default ``"smoothed <metric> by <key>"``.
        xlabel: Label of the step axis.

    Returns:
        The figure: one thin line per run, one thick line per value of ``key``.
    """
    mean_col = f"{metric}_smooth"
    values = runs_df.set_index("run_id")[key].map(lambda v: "n/a" if v is None or v != v else v)
    levels = sorted(values.unique(), key=_sort_key)
    numeric = all(_sort_key(v)[0] == 0 for v in levels)
    if numeric and len(levels) > 1:
        cmap = colormaps["viridis"]
        colours = [cmap(x) for x in np.linspace(0.0, 0.85, len(levels))]
    else:
        colours = _colours(len(levels))
    # Element-wise == on a Series would treat a tuple value as a list to compare with.
    members = {v: values.index[[x == v for x in values]] for v in levels}
    legend = [f"{key}={format_value(v)} (n={len(members[v])})" for v in levels]
    fig, ax = _figure(legend, title or f"smoothed {metric} by {key}", xlabel, f"smoothed {metric}")
    data = smoothed_df.dropna(subset=[mean_col])
    handles = []
    for level, colour in zip(levels, colours, strict=True):
        sub = data[data["run_id"].isin(members[level])]
        for _, g in sub.groupby("run_id", sort=False):
            g = g.sort_values("step", kind="stable")
            ax.plot(g["step"], g[mean_col], color=colour, linewidth=0.7, alpha=0.45)
        # Mean over the runs present at each step; a shorter (running) run simply
        # stops contributing where its curve ends.
        by_step = sub.groupby("step")[mean_col]
        mean = by_step.mean()
        (line,) = ax.plot(mean.index, mean.to_numpy(), color=colour, linewidth=2.4)
        handles.append(line)
        if band and len(members[level]) > 1:
            sd = by_step.std(ddof=0).to_numpy()
            ax.fill_between(
                mean.index, mean - sd, mean + sd, color=colour, alpha=BAND_ALPHA, linewidth=0
            )
    _chance_line(ax, metric, smoothed_df[mean_col])
    _legend(fig, handles, legend)
    return fig


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as PNG atomically (``store.atomic_write``).

    The figure is not registered with pyplot, so nothing needs closing; its canvas
    is cleared afterwards to free the rendered buffer.

    Args:
        fig: The figure.
        path: Where the PNG goes; its folder is created if missing.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    store.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    fig.clear()
    return path
