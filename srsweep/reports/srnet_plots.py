"""The ``srnet`` report figures (seed 003, studies 173/184): smoothed validation loss and
min_corr grouped by each hyperparameter that differs, the SD share of the loss over
epochs, and the best run's learned latents against the true ones on the validation rows.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D

from srsweep.reports._figures import LINE_STYLES
from srsweep.reports._figures import KernelFigure
from srsweep.reports._figures import ModelFiles
from srsweep.reports._figures import colour_scale
from srsweep.reports._figures import config_column
from srsweep.reports._figures import missing_columns
from srsweep.reports._figures import new_figure
from srsweep.reports.frames import format_value
from srsweep.reports.frames import smooth
from srsweep.reports.frames import varying_keys

__all__ = ["srnet_figures"]

SRNET_AVG_HOR = 500  # the srnet kernel's default avg_hor (epochs)
_FILE_CHARS = re.compile(r"[^A-Za-z0-9._=-]")  # as the report's by_<key>.png names


def _window(runs: pd.DataFrame, default: int) -> int:
    """The most common ``avg_hor`` of the runs' configs (epochs), else ``default``."""
    vals = pd.to_numeric(config_column(runs, "avg_hor", default), errors="coerce").dropna()
    return int(vals.mode().iloc[0]) if len(vals) else default


def _levels(values: pd.Series) -> list[Any]:
    """Distinct values in order: numbers by size, anything else by its text."""

    def key(v: Any) -> tuple[int, Any]:
        numeric = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        return (0, float(v)) if numeric else (1, str(v))

    return sorted(set(values), key=key)


def _grouped(
    ax: Any,
    sm: pd.DataFrame,
    col: str,
    group: pd.Series,
    colour: dict[Any, Any],
) -> list[Line2D]:
    """Thin smoothed curves per run, a thick mean per group; returns the legend handles."""
    mean_col, handles = f"{col}_smooth", []
    data = sm.dropna(subset=[mean_col])
    for level, c in colour.items():
        members = group.index[[v == level for v in group]]
        sub = data[data["run_id"].isin(members)]
        for _, g in sub.groupby("run_id", sort=False):
            ax.plot(g["step"], g[mean_col], color=c, linewidth=0.7, alpha=0.45)
        mean = sub.groupby("step")[mean_col].mean()
        label = f"{format_value(level)} (n={len(members)})"
        handles += ax.plot(mean.index, mean.to_numpy(), color=c, linewidth=2.2, label=label)
    return handles


def srnet_figures(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = missing_columns(hist, ("val_loss", "min_corr"))
    if gone:
        models.notes.append(f"srnet plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    window = _window(runs, SRNET_AVG_HOR)
    sm = {
        col: smooth(hist, col, window)
        for col in ("val_loss", "min_corr", "sd_share")
        if col in hist.columns
    }
    figs: list[KernelFigure] = []
    keys: list[str | None] = list(varying_keys(runs)) or [None]
    for key in keys:
        if key is None:
            group = pd.Series(["all runs"] * len(ids), index=ids)
        else:
            group = pd.Series([v if v == v else "n/a" for v in runs[key]], index=ids)
        levels = _levels(group)
        # distinct colours for a few levels (a 0 next to 1e-4 would share one shade of a
        # sequential map); a sequential map only where there are too many to tell apart
        if len(levels) > 9 and all(isinstance(v, (int, float)) for v in levels):
            colour = colour_scale(levels, "viridis")
        else:
            colour = {v: colormaps["tab10"](i % 10) for i, v in enumerate(levels)}
        fig, axes = new_figure(2, 13)
        for ax, col, what in zip(
            axes,
            ("val_loss", "min_corr"),
            ("validation MSE", "min_corr (worst latent's best |r|)"),
            strict=True,
        ):
            handles = _grouped(ax, sm[col], col, group, colour)
            ax.set(xlabel="epoch", ylabel=f"smoothed {col}", title=what)
        axes[0].set_yscale("log", nonpositive="mask")
        axes[1].set_ylim(0, 1.02)
        axes[1].legend(handles=handles, title=key, fontsize="small")
        name = "srnet_curves.png" if key is None else f"srnet_by_{_FILE_CHARS.sub('_', key)}.png"
        by = "" if key is None else f", grouped by {key} (thick: group mean)"
        figs.append(
            (
                name,
                fig,
                f"Validation loss (log scale) and min_corr, trailing mean over "
                f"{window} epochs{by}.",
            )
        )
    figs += _srnet_sd_share(runs, sm.get("sd_share"), window, models)
    figs += _srnet_latents(runs, models)
    return figs


def _srnet_sd_share(
    runs: pd.DataFrame, sm: pd.DataFrame | None, window: int, models: ModelFiles
) -> list[KernelFigure]:
    if sm is None or sm["sd_share_smooth"].isna().all():
        models.notes.append("srnet_sd_share.png: no run had the SD term on (sd > 0); not drawn")
        return []
    ids = [r for r in runs["run_id"] if sm.loc[sm["run_id"] == r, "sd_share"].notna().any()]
    sd = config_column(runs, "sd", 1.0).astype(float)
    fun = config_column(runs, "sd_fun", "linear")
    colour = colour_scale(sd[ids], "viridis")
    styles = {f: LINE_STYLES[i % len(LINE_STYLES)] for i, f in enumerate(_levels(fun[ids]))}
    fig, (ax,) = new_figure()
    seen: set[str] = set()
    for r in ids:
        g = sm[sm["run_id"] == r].dropna(subset=["sd_share_smooth"])
        label = f"sd={format_value(sd[r])}, {fun[r]}"
        ax.plot(
            g["step"],
            g["sd_share_smooth"],
            color=colour[sd[r]],
            linestyle=styles[fun[r]],
            linewidth=1.1,
            label=None if label in seen else label,
        )
        seen.add(label)
    ax.set(
        xlabel="epoch",
        ylabel="|L_SD| / (|L_SD| + |L_pred|)",
        title="share of the SD term in the loss",
    )
    shares = sm.loc[sm["run_id"].isin(ids), "sd_share_smooth"]
    if (shares > 0).all() and shares.max() < 0.1:  # small sd: on 0..1 every line lies on 0
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    return [
        (
            "srnet_sd_share.png",
            fig,
            f"SD share of the loss per run (trailing mean over "
            f"{window} epochs), coloured by sd, dashed by sd_fun; near 1 the critic "
            "dominates the regression.",
        )
    ]


def _srnet_latents(runs: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    col = "summary.min_corr"
    if col not in runs.columns:
        models.notes.append("srnet_latents.png: no run has a min_corr; not drawn")
        return []
    ranked = runs.assign(_v=pd.to_numeric(runs[col], errors="coerce")).dropna(subset="_v")
    for _, best in ranked.sort_values("_v", ascending=False, kind="stable").iterrows():
        payload = models.get(str(best["run_id"]))
        if payload is not None and "val_latents" in payload:
            break
    else:
        models.notes.append(
            "srnet_latents.png: no run with min_corr has a readable model file; not drawn"
        )
        return []
    lat = np.asarray(payload["val_latents"], dtype=float)
    true = np.asarray(payload["val_true"], dtype=float)
    corr = np.asarray(payload["corr_mat"], dtype=float)
    true_name = str(payload.get("lat_var", "true"))
    fig, axes = new_figure(lat.shape[1], min(4.2 * lat.shape[1], 21.0))
    for i, ax in enumerate(axes):
        j = int(np.abs(corr[i]).argmax())
        ax.scatter(true[:, j], lat[:, i], s=6, alpha=0.6)
        slope, icpt = np.polyfit(true[:, j], lat[:, i], 1)
        xs = np.linspace(true[:, j].min(), true[:, j].max(), 2)
        ax.plot(xs, slope * xs + icpt, "k--", linewidth=1.0)
        ax.set(
            xlabel=f"{true_name}[{j}]",
            ylabel=f"latent {i}",
            title=f"latent {i} vs {true_name}[{j}]: r = {corr[i, j]:.3f}",
        )
    return [
        (
            "srnet_latents.png",
            fig,
            f"Best run by min_corr, {best['name']} (min_corr "
            f"{format_value(float(best['_v']))}): each learned latent against the true "
            f"latent it correlates with most, on the validation rows, with a least-squares "
            "line (a latent is only defined up to scale and offset).",
        )
    ]
