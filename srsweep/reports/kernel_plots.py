"""Per-kernel figures for a sweep report: what each seed study looked at.

``KERNEL_PLOTS`` maps a kernel name to a function ``(runs, history, models) ->
[(filename, Figure, caption)]`` that draws from the tidy frames of ``frames.py`` and,
where the history is not enough, from the runs' model files (``ModelFiles`` loads them on
demand and turns a missing or unreadable file into a note instead of an error).

- ``stn`` (seeds 000, 001): x_range and the sup-norm distance to x² over cycles, and the
  learned f(x) against x², coloured as the seed does (reds: min dist < 1, blues: not).
- ``lazy`` (seed 002): relative weight movement and train loss over steps per α and
  width, and the final movement against α (∝ 1/α in the lazy regime).
- ``srnet`` (seed 003, studies 173/184): smoothed validation loss and min_corr grouped
  by each hyperparameter that differs, the SD share of the loss over epochs, and the
  best run's learned latents against the true ones on the validation rows.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D

from srsweep.reports._figures import LINE_STYLES
from srsweep.reports._figures import MAX_RUN_LEGEND
from srsweep.reports._figures import KernelFigure
from srsweep.reports._figures import ModelFiles
from srsweep.reports._figures import colour_scale
from srsweep.reports._figures import config_column
from srsweep.reports._figures import missing_columns
from srsweep.reports._figures import new_figure
from srsweep.reports._figures import series
from srsweep.reports.frames import format_value
from srsweep.reports.frames import history_frame
from srsweep.reports.frames import run_labels
from srsweep.reports.frames import runs_frame
from srsweep.reports.frames import varying_keys
from srsweep.reports.srnet_plots import srnet_figures

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord

__all__ = ["KERNEL_PLOTS", "KernelFigure", "ModelFiles", "kernel_figures", "success_colours"]

SUCCESS_DIST = 1.0  # the seed's split of runs: min(dist) < 1 succeeded


def success_colours(min_dist: Mapping[str, float]) -> dict[str, Any]:
    """The seed's palette: reds for runs with min dist < 1, blues for the rest, darker
    for larger min dist within each group. The scale starts at 35 % of the map (the
    seed's 0 is nearly white) and runs without a dist are grey."""
    out: dict[str, Any] = {k: to_rgba("0.6") for k, d in min_dist.items() if not d == d}
    for ok, cmap in ((True, "Reds"), (False, "Blues")):
        group = {k: d for k, d in min_dist.items() if d == d and (d < SUCCESS_DIST) == ok}
        shade = colour_scale(group.values(), cmap, 0.35, 1.0)
        out.update({k: shade[d] for k, d in group.items()})
    return out


def _stn(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = missing_columns(hist, ("x_range", "dist"))
    if gone:
        models.notes.append(f"stn plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    init = config_column(runs, "init_x_range", 1.0)
    init_colour = colour_scale(init.to_numpy(dtype=float), "viridis")
    min_dist = {r: float(np.min(series(hist, r, "dist")[1], initial=np.inf)) for r in ids}
    min_dist = {r: d if np.isfinite(d) else float("nan") for r, d in min_dist.items()}
    colour = success_colours(min_dist)
    labels = run_labels(runs, varying_keys(runs))
    per_run = len(ids) <= MAX_RUN_LEGEND

    def success_legend(ax: Any, extra: Sequence[Any] = ()) -> None:
        if per_run:
            ax.legend(fontsize="small")
            return
        n_ok = sum(d < SUCCESS_DIST for d in min_dist.values())
        n_bad = len(ids) - n_ok
        proxies = [
            Line2D([], [], color=colormaps["Reds"](0.8), label=f"min dist < 1 (n={n_ok})"),
            Line2D([], [], color=colormaps["Blues"](0.8), label=f"min dist ≥ 1 (n={n_bad})"),
        ]
        ax.legend(handles=proxies + list(extra), fontsize="small")

    def run_label(r: str) -> str:
        return f"{labels[r]} (min dist {format_value(min_dist[r])})"

    fig, (ax,) = new_figure()
    for r in ids:
        ax.plot(*series(hist, r, "x_range"), color=init_colour[float(init[r])], linewidth=1.0)
    counts = init.astype(float).value_counts()
    ax.legend(
        handles=[
            Line2D([], [], color=c, label=f"init_x_range={format_value(v)} (n={counts[v]})")
            for v, c in init_colour.items()
        ],
        fontsize="small",
    )
    ax.set(xlabel="cycle", ylabel="x_range", title="x_range trajectories")
    figs = [
        (
            "stn_x_range.png",
            fig,
            "Training half-width x_range per cycle, coloured by its "
            "initial value (seed 000: converging hyperparameter trajectories).",
        )
    ]

    fig, (ax,) = new_figure()
    for r in ids:
        ax.plot(
            *series(hist, r, "dist"),
            color=colour[r],
            linewidth=1.0,
            label=run_label(r) if per_run else None,
        )
    ax.axhline(SUCCESS_DIST, color="0.3", linestyle="--", linewidth=1.0)
    ax.set_yscale("log", nonpositive="mask")
    ax.set(xlabel="cycle", ylabel="max |f(x) − x²| on the eval grid", title="sup-norm distance")
    success_legend(ax)
    figs.append(
        (
            "stn_dist.png",
            fig,
            "Sup-norm distance to x² per cycle (log scale); reds "
            "reached min dist < 1 (dashed line), blues did not, as in seed 000.",
        )
    )

    fig, (ax,) = new_figure()
    drawn, clean = 0, True
    for r in ids:
        payload = models.get(r)
        if payload is None or "x_eval" not in payload:
            continue
        f = payload.get("f_eval_clean", payload.get("f_eval"))
        clean = clean and "f_eval_clean" in payload
        ax.plot(
            payload["x_eval"],
            f,
            color=colour[r],
            linewidth=1.0,
            label=run_label(r) if per_run else None,
        )
        grid, drawn = np.asarray(payload["x_eval"]), drawn + 1
    if not drawn:
        models.notes.append("stn_function.png: no run has a readable model file; not drawn")
        return figs
    xs = np.linspace(grid.min(), grid.max(), 200)
    (target,) = ax.plot(xs, xs**2, "k--", linewidth=1.5, label="x²")
    ax.set(xlabel="x", ylabel="f(x)", title="learned function at the end")
    success_legend(ax, [target])
    which = "with the perturbation off (ε = 0)" if clean else "as evaluated in training"
    figs.append(
        (
            "stn_function.png",
            fig,
            f"The learned f(x) at the end of each run, {which}, "
            f"against x² (dashed); {drawn} of {len(ids)} runs.",
        )
    )
    return figs


def _lazy(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = missing_columns(hist, ("loss", "rel_move_last", "rel_move_all"))
    if gone:
        models.notes.append(f"lazy plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    alpha = config_column(runs, "alpha", 1.0).astype(float)
    model, width = config_column(runs, "model", "deep"), config_column(runs, "width", 8)
    group = pd.Series([f"{m} w={w}" for m, w in zip(model, width, strict=True)], index=alpha.index)
    groups = sorted(set(group), key=lambda g: (g.split()[0], int(g.split("=")[1])))
    by_alpha = alpha.nunique() > 1
    # Colour by α when it varies (the α study), else by width/model (the width study).
    a_colour = colour_scale(alpha, "viridis")
    g_colour = {g: colormaps["tab10"](i % 10) for i, g in enumerate(groups)}
    g_style = {
        g: LINE_STYLES[i % len(LINE_STYLES)] if by_alpha else "-" for i, g in enumerate(groups)
    }

    def style(r: str) -> dict[str, Any]:
        c = a_colour[alpha[r]] if by_alpha else g_colour[group[r]]
        lab = f"α={format_value(alpha[r])}, {group[r]}"
        return {"color": c, "linestyle": g_style[group[r]], "label": lab, "linewidth": 1.1}

    def curves(ax: Any, col: str) -> None:
        seen: set[str] = set()
        for r in ids:
            s, v = series(hist, r, col)
            kw = style(r)
            if kw["label"] in seen:  # one legend entry per (α, width), not per seed
                kw["label"] = None
            seen.add(kw["label"])
            ax.plot(s + 1, v, **kw)  # step k is logged after k + 1 updates
        ax.set_xscale("log")
        ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("SGD updates")

    fig, axes = new_figure(2, 13)
    for ax, col, what in zip(
        axes,
        ("rel_move_last", "rel_move_all"),
        ("last layer (lout.bias)", "all weights"),
        strict=True,
    ):
        curves(ax, col)
        ax.set(ylabel="‖w − w0‖ / ‖w0‖", title=f"relative movement: {what}")
    axes[1].legend(fontsize="small")
    figs = [
        (
            "lazy_movement.png",
            fig,
            "Relative weight movement over SGD updates per α and "
            "width (log–log). As in the notebook, 'last layer' is list(params)[-1], the "
            "output bias; the right panel is the whole weight vector.",
        )
    ]

    fig, axes = new_figure(2, 13)
    for ax, col in zip(axes, ("rel_move_last", "rel_move_all"), strict=True):
        last = {r: series(hist, r, col)[1] for r in ids}
        final = {r: float(v[-1]) for r, v in last.items() if len(v)}
        for g in groups:
            members = [r for r in ids if group[r] == g and r in final]
            if not members:
                continue
            pts = pd.Series([final[r] for r in members], index=alpha[members].to_numpy())
            mean = pts.groupby(level=0).mean()
            c = g_colour[g]
            ax.scatter(pts.index, pts.to_numpy(), color=c, alpha=0.5, s=14)
            ax.plot(mean.index, mean.to_numpy(), "o-", color=c, label=g)
            if len(mean) > 1:  # the lazy-regime slope, through the smallest α
                a0, y0 = float(mean.index[0]), float(mean.iloc[0])
                ax.plot(mean.index, y0 * a0 / mean.index, ":", color=c, alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log", nonpositive="mask")
        ax.set(xlabel="α", ylabel=f"final {col}", title=f"final {col} against α")
    slope = Line2D([], [], color="0.4", linestyle=":", label="∝ 1/α")
    axes[0].legend(handles=[*axes[0].get_legend_handles_labels()[0], slope], fontsize="small")
    figs.append(
        (
            "lazy_final_movement.png",
            fig,
            "Final relative movement against α "
            "(log–log), one line per model and width (mean over runs, runs as dots); "
            "dotted: ∝ 1/α, the lazy-training slope.",
        )
    )

    fig, (ax,) = new_figure()
    curves(ax, "loss")
    ax.set(ylabel="train loss (MSE)", title="training loss")
    ax.legend(fontsize="small")
    figs.append(("lazy_loss.png", fig, "Training loss over SGD updates per α and width (log–log)."))
    return figs


Draw = Callable[[pd.DataFrame, pd.DataFrame, ModelFiles], list[KernelFigure]]
KERNEL_PLOTS: dict[str, Draw] = {"stn": _stn, "lazy": _lazy, "srnet": srnet_figures}


def kernel_figures(
    kernel: str,
    records: Iterable[RunRecord],
    runs: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
) -> tuple[list[KernelFigure], list[str]]:
    """The kernel's figures for these runs, and notes on what was skipped.

    Args:
        kernel: Kernel name; one without a ``KERNEL_PLOTS`` entry gets no figures.
        records: The runs (their config and ``model_path``, and their history unless
            ``history`` is given).
        runs: Their runs frame; default ``runs_frame(records)``.
        history: Their history frame, every key at every step; default
            ``history_frame(records)``.

    Returns:
        ``(figures, notes)``: ``(filename, Figure, caption)`` triples, and one line per
        skipped model file or figure.
    """
    draw = KERNEL_PLOTS.get(kernel)
    records = list(records)
    if draw is None or not records:
        return [], []
    models = ModelFiles(records)
    figs = draw(
        runs_frame(records) if runs is None else runs,
        history_frame(records) if history is None else history,
        models,
    )
    return figs, models.notes
