"""Write a sweep's report: frames, trends, figures and ``report.md`` in one folder.

``report_sweep`` picks what a sweep is reported by (its kernel's curve, or a script's
metric) from the spec; ``write_report`` writes a report of any runs, given the metric,
goal and curve. Every file is written through ``store.atomic_write``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pandas as pd

from srsweep import kernels
from srsweep import store
from srsweep.errors import UsageError
from srsweep.reports import frames
from srsweep.reports.kernel_plots import kernel_figures
from srsweep.reports.markdown import curves_section
from srsweep.reports.markdown import kernel_section
from srsweep.reports.markdown import report_markdown
from srsweep.reports.plots import comparison_plot
from srsweep.reports.plots import grouped_plot
from srsweep.reports.plots import save
from srsweep.reports.trends import characterise
from srsweep.reports.trends import classify
from srsweep.spec import objective

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from srsweep.backends._base import RunRecord

__all__ = ["report_sweep", "write_report"]

DEFAULT_AVG_HOR = 50  # the window of the study's later plots (symrep §10)
MAX_LEGEND_RUNS = 12  # beyond this the comparison legend stops being readable
HIGHLIGHT = 8  # how many best runs keep colour and a legend entry in a large sweep


def report_sweep(
    spec: dict[str, Any],
    runs: Sequence[RunRecord],
    out_dir: Path,
    *,
    sweep_id: str,
    title: str,
    curve: str | None = None,
    avg_hor: int | None = None,
    exclude: Sequence[str] = (),
    band: bool = True,
) -> list[Path]:
    """Write the report of a sweep's runs (see ``write_report``), judged as the spec says.

    A kernel's sweep (its ``program`` names a kernel) ranks by the spec's metric, else
    the kernel's, plots the kernel's curve and adds the kernel's own figures. A
    script's sweep plots and ranks by the spec's metric, and plots every other metric
    the runs logged too.

    Args:
        spec: The sweep's spec as registered (a W&B sweep config).
        runs: Its runs, one attempt per trial.
        out_dir: Folder for the files.
        sweep_id: The sweep as the user named it, for messages.
        title: Report and figure title.
        curve: Logged metric to plot and classify instead of the default.
        avg_hor: Smoothing window; None takes the runs' own.
        exclude: Drop runs whose id or name contains any of these.
        band: Shade ±1 std around the curves.

    Returns:
        The written paths, as ``write_report`` lists them.

    Raises:
        UsageError: a script's spec names no metric and no ``curve`` is given (the
            message lists what the runs logged), or as ``write_report``.
    """
    program = str(spec.get("program"))
    kernel = kernels.get(program) if program in kernels.names() else None
    metric, goal = objective(spec, kernel)
    if kernel is not None:
        return write_report(
            runs, out_dir, metric=metric, goal=goal, curve=curve or kernel.curve,
            avg_hor=avg_hor, exclude=exclude, band=band, title=title, kernel=kernel.name,
        )  # fmt: skip
    curve = curve or metric  # a script: its spec's metric, and every other metric it logged
    if not curve:
        logged = sorted({k for r in runs for h in r.history for k in h} - {"_step"})
        raise UsageError(
            f"report: sweep {sweep_id} runs a script and its spec names no metric; "
            f"pass --curve (logged: {', '.join(logged) or 'nothing'})"
        )
    return write_report(
        runs, out_dir, metric=metric or curve, goal=goal, curve=curve,
        avg_hor=avg_hor, exclude=exclude, band=band, title=title, more_curves=True,
    )  # fmt: skip


def write_report(
    records: Iterable[RunRecord],
    out_dir: Path,
    *,
    metric: str,
    goal: str,
    curve: str,
    avg_hor: int | None = None,
    exclude: Sequence[str] = (),
    band: bool = True,
    title: str = "",
    k: int = 10,
    kernel: str | None = None,
    more_curves: bool = False,
) -> list[Path]:
    """Write a sweep's report (CSV tables, PNG figures and ``report.md``) to ``out_dir``.

    Args:
        records: The sweep's runs; running ones are included with partial curves.
        out_dir: Folder for the files (created if missing); files are replaced
            atomically.
        metric: Summary metric the best-k table ranks by, e.g. ``"avg_acc"``.
        goal: ``"maximize"`` or ``"minimize"`` for ``metric`` (and for ``curve``).
        curve: Logged metric to smooth and plot, e.g. ``"acc"``.
        avg_hor: Smoothing window in steps; None takes the most common ``avg_hor``
            in the runs' configs, or 50.
        exclude: Drop runs whose id or name contains any of these.
        band: Shade ±1 std around the curves.
        title: Report and figure title; default from the sweep id.
        k: Rows in the best-k table.
        kernel: The runs' kernel; one with a ``KERNEL_PLOTS`` entry adds its figures
            (e.g. ``stn_dist.png``) and a section to the report. Runs whose model file
            is missing or unreadable are left out of those figures, with a note.
        more_curves: Also plot every other numeric metric the runs logged, smoothed
            the same way (``curve_<metric>.png``), e.g. for a script's sweep.

    Returns:
        The written paths: ``runs.csv``, ``history.csv`` (with the smoothed curve),
        ``best.csv``, ``trends.csv`` (trend per run), ``comparison.png``,
        ``by_<key>.png`` per varying swept key (in column order), the kernel's
        figures, ``curve_<metric>.png`` per other metric with ``more_curves``,
        ``report.md``.

    Raises:
        UsageError: no run logged ``curve``, no run has ``metric``, a bad ``goal`` or
            ``avg_hor``.
    """
    records = frames.exclude(records, exclude)
    hist = frames.history_frame(records)
    if curve not in hist.columns or pd.to_numeric(hist[curve], errors="coerce").isna().all():
        logged = sorted(c for c in hist.columns if c not in ("run_id", "step"))
        raise UsageError(
            f"report: no run (of {len(records)} after exclusions) has any history of "
            f"{curve!r}; logged metrics: {', '.join(logged) or 'none'}"
        )
    runs = frames.runs_frame(records)
    if avg_hor is None:
        avg_hor = _default_avg_hor(runs)
    smoothed = frames.smooth(hist, curve, avg_hor)
    best = frames.best_k(runs, metric, goal, k)
    keys = _swept_keys(records, runs)
    labels = frames.run_labels(runs, keys)
    running = labels.index.isin(runs.loc[runs["state"] == "running", "run_id"])
    labels = labels.where(~running, labels + " (running)")

    smooth_col = f"{curve}_smooth"
    values = smoothed[smooth_col].dropna()
    accuracy = "acc" in curve.lower() and values.between(0.0, 1.0).all()
    # Non-accuracy curves have no chance level: judge each against its own start, with
    # "learning" meaning a gain of 5 % of the range all curves span.
    spread = float(values.max() - values.min()) if len(values) else 0.0
    margin = 0.05 if accuracy else max(0.05 * spread, 1e-12)
    trends = classify(
        smoothed,
        smooth_col,
        chance=0.5 if accuracy else None,
        margin=margin,
        warmup=avg_hor,
        goal=goal,
    )
    summary = characterise(runs, trends, keys)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweeps = sorted({s for s in runs["sweep_id"] if isinstance(s, str)})
    title = title or (f"Sweep {', '.join(sweeps)}" if sweeps else "Runs report")
    xlabel = "epoch" if "epoch" in hist.columns else "step"
    trends_table = trends.merge(runs[["run_id", "name", "state", *keys]], on="run_id")

    paths = [
        _write_text(out_dir / "runs.csv", runs.to_csv(index=False)),
        _write_text(out_dir / "history.csv", smoothed.to_csv(index=False)),
        _write_text(out_dir / "best.csv", best.to_csv(index=False)),
        _write_text(out_dir / "trends.csv", trends_table.to_csv(index=False)),
    ]
    highlight = None
    if len(runs) > MAX_LEGEND_RUNS:
        highlight = list(frames.best_k(runs, metric, goal, HIGHLIGHT)["run_id"])
    fig = comparison_plot(
        smoothed, labels, curve, band=band, title=title, highlight=highlight, xlabel=xlabel
    )
    paths.append(save(fig, out_dir / "comparison.png"))
    figures = {}
    for key in keys:
        fig = grouped_plot(smoothed, runs, key, curve, band=band, xlabel=xlabel)
        figures[key] = save(fig, out_dir / f"by_{_file_key(key)}.png").name
        paths.append(out_dir / figures[key])

    text = report_markdown(
        title=title,
        runs=runs,
        best=best,
        trends=trends_table,
        summary=summary,
        keys=keys,
        metric=metric,
        goal=goal,
        curve=curve,
        avg_hor=avg_hor,
        band=band,
        excluded=[p for p in exclude if p],
        highlight=highlight,
        figures=figures,
    )
    if kernel is not None:
        figs, notes = kernel_figures(kernel, records)
        paths += [save(fig, out_dir / name) for name, fig, _ in figs]
        text += kernel_section(kernel, [(n, c) for n, _, c in figs], notes)
    if more_curves:
        extra = _more_curves(hist, curve, labels, avg_hor, band=band, xlabel=xlabel)
        paths += [save(fig, out_dir / name) for _, name, fig in extra]
        text += curves_section([(key, name) for key, name, _ in extra])
    paths.append(_write_text(out_dir / "report.md", text))
    return paths


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8 with newlines as given, atomically."""
    store.atomic_write(path, lambda tmp: Path(tmp).write_text(text, "utf-8", newline=""))
    return path


def _default_avg_hor(runs_df: pd.DataFrame) -> int:
    """The most common ``avg_hor`` in the runs' configs, else ``DEFAULT_AVG_HOR``."""
    cols = [c for c in frames.config_columns(runs_df) if c.split(".")[-1] == "avg_hor"]
    found = [
        int(v)
        for c in cols
        for v in runs_df[c]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v > 0
    ]
    return Counter(found).most_common(1)[0][0] if found else DEFAULT_AVG_HOR


def _file_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]", "_", key)


def _swept_keys(records: Sequence[RunRecord], runs_df: pd.DataFrame) -> list[str]:
    """Varying keys among those the sweep chose (``params``); all config keys when
    no run records its params, e.g. hand-started runs."""
    swept: dict[str, None] = {}
    for r in records:
        swept.update(dict.fromkeys(frames._flatten(r.params or {})))
    return frames.varying_keys(runs_df, list(swept) if swept else None)


def _more_curves(
    hist: pd.DataFrame, curve: str, labels: pd.Series, avg_hor: int, *, band: bool, xlabel: str
) -> list[tuple[str, str, Figure]]:
    """(metric, file name, comparison figure) per numeric logged metric but ``curve``."""
    out = []
    for key in hist.columns:
        if key in ("run_id", "step", "epoch", curve) or key.startswith("_"):
            continue
        values = pd.to_numeric(hist[key], errors="coerce")
        if values.isna().all() or hist[key].map(lambda v: isinstance(v, bool)).any():
            continue
        frame = frames.smooth(hist.assign(**{key: values}), key, avg_hor)
        fig = comparison_plot(frame, labels, key, band=band, xlabel=xlabel)
        out.append((key, f"curve_{_file_key(key)}.png", fig))
    return out
