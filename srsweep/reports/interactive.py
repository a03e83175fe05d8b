"""The interactive twins of the report's figures, drawn with plotly for ``report.html``.

Each function draws one ``Study`` figure: hovering a point or curve shows its runs and
their hyperparameters, and clicking a legend entry hides or shows its traces. Colours
and level order come from ``levels.Levels``, as in the PNG figures. Curves are drawn
from ``Study.plotted`` (``frames.thin``: about 200 steps each), so the page stays small.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from srsweep.reports.analysis import Study
from srsweep.reports.frames import curves
from srsweep.reports.frames import format_value
from srsweep.reports.frames import step_stats
from srsweep.reports.hparam_plots import axis_positions
from srsweep.reports.levels import numeric_order
from srsweep.reports.levels import palette

__all__ = ["interactive_figures", "importance_figure", "MAX_CURVES"]

MAX_CURVES = 40  # more curves than this: the best stay coloured, the rest one grey trace
GREY = "#aaaaaa"
# plotly's empty template, with its plotly_white look given here as a few properties:
# a named template is copied and validated into every figure (20 ms each)
TEMPLATE = "none"
_AXIS = {
    "automargin": True,
    "gridcolor": "#ebf0f8",
    "linecolor": "#ebf0f8",
    "zerolinecolor": "#ebf0f8",
    "zerolinewidth": 2,
    "title": {"standoff": 15},
}
STYLE = {
    "plot_bgcolor": "white",
    "paper_bgcolor": "white",
    "font": {"color": "#2a3f5f"},
    "hovermode": "closest",
    "xaxis": _AXIS,
    "yaxis": _AXIS,
}
BAND_OPACITY = 0.2


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _figure(*data: Any) -> go.Figure:
    """A figure (of these traces) in the report's style (``STYLE``)."""
    return go.Figure(list(data) or None, layout={"template": pio.templates[TEMPLATE], **STYLE})


def _layout(fig: go.Figure, title: str, xlabel: str, ylabel: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=xlabel,
        yaxis_title=ylabel,
        height=480,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"itemclick": "toggle", "itemdoubleclick": "toggleothers"},
    )
    return fig


def _chance(fig: go.Figure, chance: float | None) -> None:
    if chance is not None:
        fig.add_hline(
            y=chance,
            line_dash="dash",
            line_color="#555555",
            annotation_text=f"chance ({chance:g})",
            annotation_position="bottom left",
        )


def _describe(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """Hover text per row: the hyperparameters of a run or configuration, one per line."""
    cols = []
    for k in keys:
        # each distinct value formatted once (a thousand runs take few values per key)
        seen: dict[tuple[type, Any], str] = {}

        def text(v: Any, k: str = k, seen: dict[tuple[type, Any], str] = seen) -> str:
            try:  # by type too: 1, 1.0 and True are equal keys but print apart
                return seen[type(v), v]
            except (KeyError, TypeError):  # new, NaN (never equal) or unhashable
                out = html.escape(f"{k}={format_value(v)}")
                with contextlib.suppress(TypeError):
                    seen[type(v), v] = out
                return out

        cols.append([text(v) for v in df[k]])
    return ["<br>".join(parts) for parts in zip(*cols, strict=True)] if cols else [""] * len(df)


def _band(
    fig: go.Figure,
    x: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    colour: str,
    group: str,
    value_range: tuple[float, float] | None,
) -> None:
    if value_range is not None:
        lo, hi = np.clip(lo, *value_range), np.clip(hi, *value_range)
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([hi, lo[::-1]]).round(5),
            fill="toself",
            fillcolor=_rgba(colour, BAND_OPACITY),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=group,
        )
    )


def comparison_figure(study: Study) -> go.Figure:
    """One curve per configuration (mean over its seeds) or, without replicates, per
    run; hover names its runs and hyperparameters."""
    curve, keys = study.curve, study.keys
    fig = _figure()
    if study.replicated:
        data = study.curves.rename(columns={"mean": "y", "std": "sd"}).assign(
            id=lambda d: d["config"].astype(str)
        )
        rows = numeric_order(study.configs, keys).assign(id=lambda d: d["config"].astype(str))
        runs_of = {
            str(c): ", ".join(map(str, r)) for c, r in zip(rows["id"], rows["run_ids"], strict=True)
        }
        heading = {i: f"configuration {i} (runs {runs_of[i]})" for i in rows["id"]}
    else:
        data = study.plotted.rename(columns={f"{curve}_smooth": "y", f"{curve}_std": "sd"})
        data = data.assign(id=data["run_id"])
        rows = numeric_order(study.runs, keys).assign(id=lambda d: d["run_id"])
        heading = {
            i: f"{n} ({i}, {s})"
            for i, n, s in zip(rows["id"], rows["name"], rows["state"], strict=True)
        }
    labels = dict(zip(rows["id"], _describe(rows, keys), strict=True))
    groups = curves(data, "y", ["sd"], id_col="id")
    ids = [i for i in rows["id"] if i in groups]
    shown = ids
    if len(ids) > MAX_CURVES and study.highlight is not None:
        shown = [i for i in study.highlight if i in groups]
    rest = [i for i in ids if i not in shown]
    what = "configurations" if study.replicated else "runs"
    if rest:
        # one trace of every other curve, each ended by a gap: a thousand traces of their
        # own cost a second to build and a page as slow to draw; hover names the group
        gap = np.array([np.nan])
        xs = [part for i in rest for part in (groups[i][0].astype(np.float32), gap)]
        ys = [part for i in rest for part in (groups[i][1].round(5), gap)]
        name = f"{len(rest)} other {what}"
        fig.add_trace(
            go.Scattergl(
                x=np.concatenate(xs[:-1]),
                y=np.concatenate(ys[:-1]),
                mode="lines",
                line={"color": GREY, "width": 1},
                name=name,
                legendgroup="others",
                connectgaps=False,
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
            )
        )
    colours = dict(zip(shown, palette(len(shown), ordered=False), strict=True))
    for i in shown:
        x, y, sd = groups[i]
        x, y = x.astype(float), y.round(5)
        if study.band:
            sd = np.nan_to_num(sd, nan=0.0)
            _band(fig, x, y - sd, y + sd, colours[i], i, study.value_range)
        name = labels[i].replace("<br>", ", ") or heading[i]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=name,
                legendgroup=i,
                line={"color": colours[i], "width": 2},
                hovertemplate=f"{heading[i]}<br>{labels[i]}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
            )
        )
    _chance(fig, study.chance)
    return _layout(fig, f"smoothed {curve}", study.xlabel, f"smoothed {curve}")


def _run_text(study: Study, df: pd.DataFrame) -> list[str]:
    return [
        f"{html.escape(str(name))} ({html.escape(str(rid))}, config "
        f"{config})<br>{described}<br>{study.metric} = {y:.4g}"
        for name, rid, config, described, y in zip(
            df["name"], df["run_id"], df["config"], _describe(df, study.keys), df["_y"], strict=True
        )
    ]


def _with_metric(study: Study) -> pd.DataFrame:
    y = pd.to_numeric(study.runs[f"summary.{study.metric}"], errors="coerce")
    return study.runs.assign(_y=y).dropna(subset=["_y"])


def metric_figure(study: Study, key: str) -> go.Figure:
    """The final metric of every run against ``key``: a scatter per level (log axis
    for a log key) or, for a categorical key, a box with every point per value."""
    df = _with_metric(study)
    lv = study.levels[key]
    level = lv.of(df[key])
    fig = _figure()
    for name in lv.order:
        sub = df[(level == name).to_numpy()]
        if sub.empty:
            continue
        text = _run_text(study, sub)
        common = {"name": f"{key}={name}", "text": text, "marker": {"color": lv.colours[name]}}
        hover = "%{text}<extra></extra>"
        if lv.numeric:
            fig.add_trace(
                go.Scatter(
                    x=pd.to_numeric(sub[key]),
                    y=sub["_y"],
                    mode="markers",
                    hovertemplate=hover,
                    **common,
                )
            )
        else:
            fig.add_trace(
                go.Box(
                    x=[name] * len(sub),
                    y=sub["_y"],
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    hovertemplate=hover,
                    **common,
                )
            )
    if key in study.log_keys:
        fig.update_xaxes(type="log")
    if not lv.numeric:
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(lv.order))
    _chance(fig, study.chance if study.metric == study.curve else None)
    return _layout(fig, f"{study.metric} by {key}", key, f"final {study.metric}")


def parallel_figure(study: Study) -> go.Figure:
    """Parallel coordinates of every run: one axis per key and one for the metric,
    lines coloured by the metric; drag along an axis to select runs."""
    df = _with_metric(study)
    dims = []
    for key in study.keys:
        pos, ticks = axis_positions(df[key], study.levels[key], key in study.log_keys)
        dims.append(
            {
                "label": key,
                "values": pos,
                "range": [0, 1],
                "tickvals": [p for p, _ in ticks],
                "ticktext": [t for _, t in ticks],
            }
        )
    dims.append({"label": study.metric, "values": df["_y"]})
    line = {
        "color": df["_y"],
        "colorscale": "Viridis",
        "showscale": True,
        "colorbar": {"title": {"text": study.metric}},
    }
    fig = _figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title=f"every run's hyperparameters and final {study.metric}", height=480)
    return fig


def importance_figure(study: Study) -> go.Figure:
    """Importance of each key with its spread over resamples."""
    t = study.importance
    assert t is not None
    rows = t.iloc[::-1]
    fig = _figure(
        go.Bar(
            x=rows["importance"],
            y=rows["key"],
            orientation="h",
            error_x={"type": "data", "array": rows["std"]},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            name="importance",
        )
    )
    _layout(fig, f"importance for {study.metric}", "share of variance lost when shuffled", "")
    fig.update_layout(height=160 + 40 * len(t))
    return fig


def grouped_figure(study: Study, key: str) -> go.Figure:
    """The mean smoothed curve of each level of ``key`` over its runs, with a band."""
    curve = study.curve
    lv = study.levels[key]
    level = lv.of(study.runs.set_index("run_id")[key])
    per_run = curves(study.plotted, f"{curve}_smooth")
    fig = _figure()
    for name in lv.order:
        members = level.index[(level == name).to_numpy()]
        drawn = [per_run[r] for r in members if r in per_run and len(per_run[r][0])]
        if not drawn:
            continue
        x, y, sd = step_stats(drawn)
        x = x.astype(float)
        n = len(drawn)
        if study.band and n > 1:
            _band(fig, x, y - sd, y + sd, lv.colours[name], name, study.value_range)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=f"{key}={name} (n={n})",
                legendgroup=name,
                line={"color": lv.colours[name], "width": 2.5},
                hovertemplate=f"{html.escape(key)}={html.escape(name)}, {n} runs<br>"
                "%{x}: %{y:.4g}<extra></extra>",
            )
        )
    _chance(fig, study.chance)
    return _layout(fig, f"smoothed {curve} by {key}", study.xlabel, f"smoothed {curve}")


def interactive_figures(study: Study) -> dict[str, go.Figure]:
    """Every interactive figure by the name ``document`` gives its PNG twin:
    ``comparison``, ``importance``, ``metric_vs:<key>``, ``parallel``, ``by:<key>``."""
    out = {"comparison": comparison_figure(study)}
    if study.importance is not None:
        out["importance"] = importance_figure(study)
    has_metric = len(_with_metric(study))
    for key in study.keys:
        if has_metric:
            out[f"metric_vs:{key}"] = metric_figure(study, key)
        out[f"by:{key}"] = grouped_figure(study, key)
    if study.keys and has_metric > 1:
        out["parallel"] = parallel_figure(study)
    return out
