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
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from srsweep import store
from srsweep.reports.frames import curves
from srsweep.reports.frames import step_stats
from srsweep.reports.levels import Levels
from srsweep.reports.levels import levels_of
from srsweep.reports.levels import palette
from srsweep.reports.trends import CHANCE
from srsweep.reports.trends import metric_range

__all__ = ["comparison_plot", "grouped_plot", "save", "chance_line", "AUTO"]

BAND_ALPHA = 0.25  # as the study's uncertainty plots (symrep §10)
OTHER_COLOUR = "0.6"
AUTO = "auto"  # chance and range from the metric's name and values (trends.metric_range)
# Past this length a legend beside the axes squeezes them; put it underneath instead.
_LONG_LABEL = 38
# PNGs at zlib's fastest level: a crowded figure writes ~5x faster than at the default
# 6, for files ~20 % larger
PNG = {"compress_level": 1}

Range = tuple[float, float] | None


def _resolve(
    metric: str, values: pd.Series, chance: float | str | None, value_range: Range | str
) -> tuple[float | None, Range]:
    """``AUTO`` chance and range: ``CHANCE`` and [0, 1] for an accuracy, else none."""
    found = metric_range(metric, values) if AUTO in (chance, value_range) else None
    if chance == AUTO:
        chance = CHANCE if found is not None else None
    if value_range == AUTO:
        value_range = found
    return (None if chance is None else float(chance)), value_range  # type: ignore[return-value]


def _band(ax: Any, x: Any, lo: Any, hi: Any, colour: Any, value_range: Range) -> None:
    """Shade [lo, hi], clipped to the metric's range when it has one."""
    if value_range is not None:
        lo, hi = np.clip(lo, *value_range), np.clip(hi, *value_range)
    ax.fill_between(x, lo, hi, color=colour, alpha=BAND_ALPHA, linewidth=0)


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


def chance_line(ax: Any, chance: float | None) -> None:
    """A dashed line at the chance level, labelled on the axes."""
    if chance is None:
        return
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=1.0)
    ax.annotate(
        f"chance ({chance:g})",
        (0.005, chance),
        xycoords=("axes fraction", "data"),
        xytext=(2, 2),
        textcoords="offset points",
        fontsize="small",
        color="0.3",
    )


def comparison_plot(
    smoothed_df: pd.DataFrame,
    labels: Mapping[str, str] | pd.Series,
    metric: str,
    *,
    band: bool,
    title: str = "",
    highlight: Sequence[str] | None = None,
    xlabel: str = "step",
    chance: float | str | None = AUTO,
    value_range: Range | str = AUTO,
) -> Figure:
    """One smoothed curve per run (or per configuration), optionally with its band.

    Args:
        smoothed_df: A frame from ``frames.smooth`` (``<metric>_smooth``, ``_std``), or
            per configuration the same columns with the configuration in ``run_id``.
        labels: Legend label per run id; the legend lists runs in this order (the
            report passes them in numeric order of their values); runs without a
            label use their id, after the others.
        metric: The raw metric that was smoothed, e.g. ``"acc"``.
        band: Shade ±1 std (``<metric>_std``) around each curve.
        title: Axes title.
        highlight: When given, only these runs are coloured and in the legend, in
            this order; the others are drawn thin and grey, as one ``LineCollection``
            (for sweeps with many runs).
        xlabel: Label of the step axis, e.g. ``"epoch"``.
        chance: Level of a dashed, labelled chance line (None: none); ``AUTO``: 0.5
            when the metric looks like an accuracy (name has "acc", values in [0, 1]).
        value_range: Bands are clipped to it (None: not clipped); ``AUTO`` as above.

    Returns:
        The figure: one line per run, plus the chance line.
    """
    mean_col, std_col = f"{metric}_smooth", f"{metric}_std"
    chance, value_range = _resolve(metric, smoothed_df[mean_col], chance, value_range)
    groups = curves(smoothed_df, mean_col, [std_col] if band else [])
    ids = list(groups)
    if highlight is None:
        order = {rid: i for i, rid in enumerate(labels.keys())}
        shown = sorted(ids, key=lambda rid: order.get(rid, len(order)))
    else:
        shown = [rid for rid in highlight if rid in groups]
    colour = dict(zip(shown, palette(len(shown), ordered=False), strict=True))
    legend = [str(labels.get(rid, rid)) for rid in shown]
    fig, ax = _figure(legend, title, xlabel, f"smoothed {metric}")
    # The other runs first, as one grey collection, so the coloured ones lie on top.
    others = [rid for rid in ids if rid not in colour]
    grey = None
    if others:
        lines = [np.column_stack(groups[rid][:2]).astype(float) for rid in others]
        grey = LineCollection(lines, colors=OTHER_COLOUR, linewidths=0.7)
        ax.add_collection(grey)
        ax.autoscale_view()
    handles = {}
    for rid in shown:
        x, y, *sd = groups[rid]
        (handles[rid],) = ax.plot(x, y, color=colour[rid], linewidth=1.4)
        if band:
            _band(ax, x, y - sd[0], y + sd[0], colour[rid], value_range)
    chance_line(ax, chance)
    legend_handles: list[Any] = [handles[rid] for rid in shown]
    if grey is not None:
        legend_handles.append(grey)
        legend.append(f"{len(others)} other runs")
    _legend(fig, legend_handles, legend)
    return fig


def grouped_plot(
    smoothed_df: pd.DataFrame,
    runs_df: pd.DataFrame,
    key: str,
    metric: str,
    *,
    band: bool,
    title: str = "",
    xlabel: str = "step",
    levels: Levels | None = None,
    chance: float | str | None = AUTO,
    value_range: Range | str = AUTO,
) -> Figure:
    """Curves coloured by the level of one hyperparameter, with each level's mean.

    Every run is a thin line in its level's colour (one ``LineCollection`` per level);
    each level's mean over its runs
    at each step is a thick line with one legend entry ``"<key>=<level> (n=<runs>)"``
    (``(n=<configurations> configs, <runs> runs)`` when ``runs_df`` has a ``config``
    column and some configuration has several seeds). With ``band``, the mean is
    shaded ±1 std across the level's runs (levels of two or more runs).

    Args:
        smoothed_df: A frame from ``frames.smooth``.
        runs_df: A frame from ``frames.runs_frame`` holding ``key``.
        key: The hyperparameter column to group by.
        metric: The raw metric that was smoothed.
        band: Shade the spread across each level's runs.
        title: Axes title; default ``"smoothed <metric> by <key>"``.
        xlabel: Label of the step axis.
        levels: The key's levels (values or quantile bins, their order and colours);
            default ``levels.levels_of`` the runs' values.
        chance: As ``comparison_plot``.
        value_range: As ``comparison_plot``.

    Returns:
        The figure: one thin line per run, one thick line per level, in level order.
    """
    mean_col = f"{metric}_smooth"
    chance, value_range = _resolve(metric, smoothed_df[mean_col], chance, value_range)
    values = runs_df.set_index("run_id")[key]
    levels = levels or levels_of(values, key)
    level_of = levels.of(values)
    replicated = "config" in runs_df and runs_df["config"].duplicated().any()
    config = runs_df.set_index("run_id")["config"] if replicated else None
    # each run's curve split out once (frames.curves); the levels drawn: those with one
    per_run = curves(smoothed_df, mean_col)
    members = {lv: level_of.index[(level_of == lv).to_numpy()] for lv in levels.order}
    drawn = {
        lv: [per_run[rid] for rid in members[lv] if rid in per_run and len(per_run[rid][0])]
        for lv in levels.order
    }
    present = [lv for lv in levels.order if drawn[lv]]

    def count(lv: str) -> str:
        if config is None:
            return f"n={len(members[lv])}"
        return f"n={config[members[lv]].nunique()} configs, {len(members[lv])} runs"

    legend = [f"{key}={lv} ({count(lv)})" for lv in present]
    fig, ax = _figure(legend, title or f"smoothed {metric} by {key}", xlabel, f"smoothed {metric}")
    handles = []
    for lv in present:
        colour = levels.colours[lv]
        # one collection of thin lines per level: thousands of runs draw in a moment
        lines = [np.column_stack(c[:2]).astype(float) for c in drawn[lv]]
        ax.add_collection(LineCollection(lines, colors=[colour], linewidths=0.7, alpha=0.45))
        steps, mean, sd = step_stats(drawn[lv])
        (line,) = ax.plot(steps, mean, color=colour, linewidth=2.4)
        handles.append(line)
        if band and len(members[lv]) > 1:
            _band(ax, steps, mean - sd, mean + sd, colour, value_range)
    ax.autoscale_view()
    chance_line(ax, chance)
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
    store.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, pil_kwargs=PNG))
    fig.clear()
    return path
