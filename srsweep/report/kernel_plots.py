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

import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from srsweep import store
from srsweep.errors import SrsweepError
from srsweep.report.frames import format_value
from srsweep.report.frames import history_frame
from srsweep.report.frames import run_labels
from srsweep.report.frames import runs_frame
from srsweep.report.frames import smooth
from srsweep.report.frames import varying_keys

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord

__all__ = ["KERNEL_PLOTS", "KernelFigure", "ModelFiles", "kernel_figures", "success_colours"]

KernelFigure = tuple[str, Figure, str]  # (file name, figure, caption)
Array = npt.NDArray[np.float64]
SUCCESS_DIST = 1.0  # the seed's split of runs: min(dist) < 1 succeeded
MAX_RUN_LEGEND = 12  # past this, legends list groups instead of runs
_STYLES = ("-", "--", ":", "-.")


class ModelFiles:
    """The runs' model files, loaded on first use; unreadable ones become ``notes``."""

    def __init__(self, records: Iterable[RunRecord]) -> None:
        self._where = {r.id: (r.name, r.model_path) for r in records}
        self._cache: dict[str, dict[str, Any] | None] = {}
        self.notes: list[str] = []

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's model file contents, or None (with a note) when it cannot be read."""
        if run_id not in self._cache:
            name, path = self._where.get(run_id, (run_id, None))
            payload = None
            if path is None:
                self.notes.append(f"{name} ({run_id}): no model file recorded; skipped")
            else:
                try:
                    payload = store.load(path)
                except SrsweepError as e:  # NotFoundError, CorruptFileError: name the path
                    self.notes.append(f"{name} ({run_id}): {e}; skipped")
            self._cache[run_id] = payload
        return self._cache[run_id]


def _figure(ncols: int = 1, width: float = 9.0) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(width, 4.8), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, ncols)))
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _series(hist: pd.DataFrame, run_id: str, col: str) -> tuple[Array, Array]:
    """(steps, values) of one run's logged ``col``, in step order, NaNs dropped."""
    g = hist.loc[hist["run_id"] == run_id, ["step", col]].dropna().sort_values("step")
    return g["step"].to_numpy(dtype=float), g[col].to_numpy(dtype=float)


def _config(runs: pd.DataFrame, key: str, default: Any) -> pd.Series:
    """A config column by run id; ``default`` (the kernel's) where it is missing."""
    col = runs[key] if key in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    return pd.Series(
        [default if v is None or v != v else v for v in col], index=runs["run_id"].to_numpy()
    )


def _missing(hist: pd.DataFrame, cols: Iterable[str]) -> list[str]:
    return [c for c in cols if c not in hist.columns or hist[c].isna().all()]


def _scale(
    values: Iterable[float], cmap: str, lo: float = 0.0, hi: float = 0.9
) -> dict[float, Any]:
    """Sequential colours by value (log-scaled when all are positive and span > 10×)."""
    vals = sorted(set(values))
    arr = np.asarray(vals, dtype=float)
    if len(arr) and arr.min() > 0 and arr.max() / arr.min() > 10:
        arr = np.log10(arr)
    span = float(arr.max() - arr.min()) if len(arr) else 0.0
    pos = (arr - arr.min()) / span if span > 0 else np.ones(len(arr))
    return {v: colormaps[cmap](lo + (hi - lo) * p) for v, p in zip(vals, pos, strict=True)}


def success_colours(min_dist: Mapping[str, float]) -> dict[str, Any]:
    """The seed's palette: reds for runs with min dist < 1, blues for the rest, darker
    for larger min dist within each group. The scale starts at 35 % of the map (the
    seed's 0 is nearly white) and runs without a dist are grey."""
    out: dict[str, Any] = {k: to_rgba("0.6") for k, d in min_dist.items() if not d == d}
    for ok, cmap in ((True, "Reds"), (False, "Blues")):
        group = {k: d for k, d in min_dist.items() if d == d and (d < SUCCESS_DIST) == ok}
        shade = _scale(group.values(), cmap, 0.35, 1.0)
        out.update({k: shade[d] for k, d in group.items()})
    return out


def _stn(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = _missing(hist, ("x_range", "dist"))
    if gone:
        models.notes.append(f"stn plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    init = _config(runs, "init_x_range", 1.0)
    init_colour = _scale(init.to_numpy(dtype=float), "viridis")
    min_dist = {r: float(np.min(_series(hist, r, "dist")[1], initial=np.inf)) for r in ids}
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

    fig, (ax,) = _figure()
    for r in ids:
        ax.plot(*_series(hist, r, "x_range"), color=init_colour[float(init[r])], linewidth=1.0)
    counts = init.astype(float).value_counts()
    ax.legend(
        handles=[Line2D([], [], color=c, label=f"init_x_range={format_value(v)} (n={counts[v]})")
                 for v, c in init_colour.items()],
        fontsize="small",
    )  # fmt: skip
    ax.set(xlabel="cycle", ylabel="x_range", title="x_range trajectories")
    figs = [("stn_x_range.png", fig, "Training half-width x_range per cycle, coloured by its "
             "initial value (seed 000: converging hyperparameter trajectories).")]  # fmt: skip

    fig, (ax,) = _figure()
    for r in ids:
        ax.plot(*_series(hist, r, "dist"), color=colour[r], linewidth=1.0,
                label=run_label(r) if per_run else None)  # fmt: skip
    ax.axhline(SUCCESS_DIST, color="0.3", linestyle="--", linewidth=1.0)
    ax.set_yscale("log", nonpositive="mask")
    ax.set(xlabel="cycle", ylabel="max |f(x) − x²| on the eval grid", title="sup-norm distance")
    success_legend(ax)
    figs.append(("stn_dist.png", fig, "Sup-norm distance to x² per cycle (log scale); reds "
                 "reached min dist < 1 (dashed line), blues did not, as in seed 000."))  # fmt: skip

    fig, (ax,) = _figure()
    drawn, clean = 0, True
    for r in ids:
        payload = models.get(r)
        if payload is None or "x_eval" not in payload:
            continue
        f = payload.get("f_eval_clean", payload.get("f_eval"))
        clean = clean and "f_eval_clean" in payload
        ax.plot(payload["x_eval"], f, color=colour[r], linewidth=1.0,
                label=run_label(r) if per_run else None)  # fmt: skip
        grid, drawn = np.asarray(payload["x_eval"]), drawn + 1
    if not drawn:
        models.notes.append("stn_function.png: no run has a readable model file; not drawn")
        return figs
    xs = np.linspace(grid.min(), grid.max(), 200)
    (target,) = ax.plot(xs, xs**2, "k--", linewidth=1.5, label="x²")
    ax.set(xlabel="x", ylabel="f(x)", title="learned function at the end")
    success_legend(ax, [target])
    which = "with the perturbation off (ε = 0)" if clean else "as evaluated in training"
    figs.append(("stn_function.png", fig, f"The learned f(x) at the end of each run, {which}, "
                 f"against x² (dashed); {drawn} of {len(ids)} runs."))  # fmt: skip
    return figs


def _lazy(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = _missing(hist, ("loss", "rel_move_last", "rel_move_all"))
    if gone:
        models.notes.append(f"lazy plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    alpha = _config(runs, "alpha", 1.0).astype(float)
    group = pd.Series(
        [f"{m} w={w}" for m, w in zip(_config(runs, "model", "deep"), _config(runs, "width", 8),
                                      strict=True)], index=alpha.index,
    )  # fmt: skip
    groups = sorted(set(group), key=lambda g: (g.split()[0], int(g.split("=")[1])))
    by_alpha = alpha.nunique() > 1
    # Colour by α when it varies (the α study), else by width/model (the width study).
    a_colour = _scale(alpha, "viridis")
    g_colour = {g: colormaps["tab10"](i % 10) for i, g in enumerate(groups)}
    g_style = {g: _STYLES[i % len(_STYLES)] if by_alpha else "-" for i, g in enumerate(groups)}

    def style(r: str) -> dict[str, Any]:
        c = a_colour[alpha[r]] if by_alpha else g_colour[group[r]]
        lab = f"α={format_value(alpha[r])}, {group[r]}"
        return {"color": c, "linestyle": g_style[group[r]], "label": lab, "linewidth": 1.1}

    def curves(ax: Any, col: str) -> None:
        seen: set[str] = set()
        for r in ids:
            s, v = _series(hist, r, col)
            kw = style(r)
            if kw["label"] in seen:  # one legend entry per (α, width), not per seed
                kw["label"] = None
            seen.add(kw["label"])
            ax.plot(s + 1, v, **kw)  # step k is logged after k + 1 updates
        ax.set_xscale("log")
        ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("SGD updates")

    fig, axes = _figure(2, 13)
    for ax, col, what in zip(axes, ("rel_move_last", "rel_move_all"),
                             ("last layer (lout.bias)", "all weights"), strict=True):  # fmt: skip
        curves(ax, col)
        ax.set(ylabel="‖w − w0‖ / ‖w0‖", title=f"relative movement: {what}")
    axes[1].legend(fontsize="small")
    figs = [("lazy_movement.png", fig, "Relative weight movement over SGD updates per α and "
             "width (log–log). As in the notebook, 'last layer' is list(params)[-1], the "
             "output bias; the right panel is the whole weight vector.")]  # fmt: skip

    fig, axes = _figure(2, 13)
    for ax, col in zip(axes, ("rel_move_last", "rel_move_all"), strict=True):
        last = {r: _series(hist, r, col)[1] for r in ids}
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
    figs.append(("lazy_final_movement.png", fig, "Final relative movement against α "
                 "(log–log), one line per model and width (mean over runs, runs as dots); "
                 "dotted: ∝ 1/α, the lazy-training slope."))  # fmt: skip

    fig, (ax,) = _figure()
    curves(ax, "loss")
    ax.set(ylabel="train loss (MSE)", title="training loss")
    ax.legend(fontsize="small")
    figs.append(("lazy_loss.png", fig, "Training loss over SGD updates per α and width "
                 "(log–log)."))  # fmt: skip
    return figs


SRNET_AVG_HOR = 500  # the srnet kernel's default avg_hor (epochs)
_FILE_CHARS = re.compile(r"[^A-Za-z0-9._=-]")  # as the report's by_<key>.png names


def _window(runs: pd.DataFrame, default: int) -> int:
    """The most common ``avg_hor`` of the runs' configs (epochs), else ``default``."""
    vals = pd.to_numeric(_config(runs, "avg_hor", default), errors="coerce").dropna()
    return int(vals.mode().iloc[0]) if len(vals) else default


def _levels(values: pd.Series) -> list[Any]:
    """Distinct values in order: numbers by size, anything else by its text."""

    def key(v: Any) -> tuple[int, Any]:
        numeric = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        return (0, float(v)) if numeric else (1, str(v))

    return sorted(set(values), key=key)


def _grouped(ax: Any, sm: pd.DataFrame, col: str, group: pd.Series, colour: dict[Any, Any],
             ) -> list[Line2D]:  # fmt: skip
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


def _srnet(runs: pd.DataFrame, hist: pd.DataFrame, models: ModelFiles) -> list[KernelFigure]:
    gone = _missing(hist, ("val_loss", "min_corr"))
    if gone:
        models.notes.append(f"srnet plots: no run logged {', '.join(gone)}; none drawn")
        return []
    ids = list(runs["run_id"])
    window = _window(runs, SRNET_AVG_HOR)
    sm = {col: smooth(hist, col, window) for col in ("val_loss", "min_corr", "sd_share")
          if col in hist.columns}  # fmt: skip
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
            colour = _scale(levels, "viridis")
        else:
            colour = {v: colormaps["tab10"](i % 10) for i, v in enumerate(levels)}
        fig, axes = _figure(2, 13)
        for ax, col, what in zip(axes, ("val_loss", "min_corr"),
                                 ("validation MSE", "min_corr (worst latent's best |r|)"),
                                 strict=True):  # fmt: skip
            handles = _grouped(ax, sm[col], col, group, colour)
            ax.set(xlabel="epoch", ylabel=f"smoothed {col}", title=what)
        axes[0].set_yscale("log", nonpositive="mask")
        axes[1].set_ylim(0, 1.02)
        axes[1].legend(handles=handles, title=key, fontsize="small")
        name = "srnet_curves.png" if key is None else f"srnet_by_{_FILE_CHARS.sub('_', key)}.png"
        by = "" if key is None else f", grouped by {key} (thick: group mean)"
        figs.append((name, fig, f"Validation loss (log scale) and min_corr, trailing mean over "
                     f"{window} epochs{by}."))  # fmt: skip
    figs += _srnet_sd_share(runs, sm.get("sd_share"), window, models)
    figs += _srnet_latents(runs, models)
    return figs


def _srnet_sd_share(runs: pd.DataFrame, sm: pd.DataFrame | None, window: int,
                    models: ModelFiles) -> list[KernelFigure]:  # fmt: skip
    if sm is None or sm["sd_share_smooth"].isna().all():
        models.notes.append("srnet_sd_share.png: no run had the SD term on (sd > 0); not drawn")
        return []
    ids = [r for r in runs["run_id"] if sm.loc[sm["run_id"] == r, "sd_share"].notna().any()]
    sd = _config(runs, "sd", 1.0).astype(float)
    fun = _config(runs, "sd_fun", "linear")
    colour = _scale(sd[ids], "viridis")
    styles = {f: _STYLES[i % len(_STYLES)] for i, f in enumerate(_levels(fun[ids]))}
    fig, (ax,) = _figure()
    seen: set[str] = set()
    for r in ids:
        g = sm[sm["run_id"] == r].dropna(subset=["sd_share_smooth"])
        label = f"sd={format_value(sd[r])}, {fun[r]}"
        ax.plot(g["step"], g["sd_share_smooth"], color=colour[sd[r]], linestyle=styles[fun[r]],
                linewidth=1.1, label=None if label in seen else label)  # fmt: skip
        seen.add(label)
    ax.set(xlabel="epoch", ylabel="|L_SD| / (|L_SD| + |L_pred|)",
           title="share of the SD term in the loss")  # fmt: skip
    shares = sm.loc[sm["run_id"].isin(ids), "sd_share_smooth"]
    if (shares > 0).all() and shares.max() < 0.1:  # small sd: on 0..1 every line lies on 0
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    return [("srnet_sd_share.png", fig, f"SD share of the loss per run (trailing mean over "
             f"{window} epochs), coloured by sd, dashed by sd_fun; near 1 the critic "
             "dominates the regression.")]  # fmt: skip


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
        models.notes.append("srnet_latents.png: no run with min_corr has a readable model "
                            "file; not drawn")  # fmt: skip
        return []
    lat = np.asarray(payload["val_latents"], dtype=float)
    true = np.asarray(payload["val_true"], dtype=float)
    corr = np.asarray(payload["corr_mat"], dtype=float)
    true_name = str(payload.get("lat_var", "true"))
    fig, axes = _figure(lat.shape[1], min(4.2 * lat.shape[1], 21.0))
    for i, ax in enumerate(axes):
        j = int(np.abs(corr[i]).argmax())
        ax.scatter(true[:, j], lat[:, i], s=6, alpha=0.6)
        slope, icpt = np.polyfit(true[:, j], lat[:, i], 1)
        xs = np.linspace(true[:, j].min(), true[:, j].max(), 2)
        ax.plot(xs, slope * xs + icpt, "k--", linewidth=1.0)
        ax.set(xlabel=f"{true_name}[{j}]", ylabel=f"latent {i}",
               title=f"latent {i} vs {true_name}[{j}]: r = {corr[i, j]:.3f}")  # fmt: skip
    return [("srnet_latents.png", fig, f"Best run by min_corr, {best['name']} (min_corr "
             f"{format_value(float(best['_v']))}): each learned latent against the true "
             f"latent it correlates with most, on the validation rows, with a least-squares "
             "line (a latent is only defined up to scale and offset).")]  # fmt: skip


Draw = Callable[[pd.DataFrame, pd.DataFrame, ModelFiles], list[KernelFigure]]
KERNEL_PLOTS: dict[str, Draw] = {"stn": _stn, "lazy": _lazy, "srnet": _srnet}


def kernel_figures(
    kernel: str, records: Iterable[RunRecord]
) -> tuple[list[KernelFigure], list[str]]:
    """The kernel's figures for these runs, and notes on what was skipped.

    Args:
        kernel: Kernel name; one without a ``KERNEL_PLOTS`` entry gets no figures.
        records: The runs (their history, config and ``model_path``).

    Returns:
        ``(figures, notes)``: ``(filename, Figure, caption)`` triples, and one line per
        skipped model file or figure.
    """
    draw = KERNEL_PLOTS.get(kernel)
    records = list(records)
    if draw is None or not records:
        return [], []
    models = ModelFiles(records)
    figs = draw(runs_frame(records), history_frame(records), models)
    return figs, models.notes
