"""Sweep reports: tidy frames, smoothed curves, the four trends, figures and Markdown.

``write_report`` is the one-call entry point the CLI uses; the pieces it is built from
(``frames``, ``trends``, ``plots``) are public for notebooks. This package is the only
place srsweep imports pandas and matplotlib, so import it lazily from the CLI.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from srsweep.errors import UsageError
from srsweep.report import frames as _frames
from srsweep.report.frames import best_k
from srsweep.report.frames import config_columns
from srsweep.report.frames import exclude
from srsweep.report.frames import format_value
from srsweep.report.frames import history_frame
from srsweep.report.frames import run_labels
from srsweep.report.frames import runs_frame
from srsweep.report.frames import smooth
from srsweep.report.frames import varying_keys
from srsweep.report.kernel_plots import KERNEL_PLOTS
from srsweep.report.kernel_plots import kernel_figures
from srsweep.report.landscape import landscape_plot
from srsweep.report.landscape import write_landscape
from srsweep.report.plots import comparison_plot
from srsweep.report.plots import grouped_plot
from srsweep.report.plots import save
from srsweep.report.trends import NO_DATA
from srsweep.report.trends import TRENDS
from srsweep.report.trends import characterise
from srsweep.report.trends import classify

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from srsweep.backends._base import RunRecord

__all__ = [
    "write_report",
    "runs_frame",
    "history_frame",
    "varying_keys",
    "config_columns",
    "smooth",
    "best_k",
    "run_labels",
    "exclude",
    "format_value",
    "classify",
    "characterise",
    "TRENDS",
    "NO_DATA",
    "comparison_plot",
    "grouped_plot",
    "save",
    "KERNEL_PLOTS",
    "kernel_figures",
    "landscape_plot",
    "write_landscape",
]

DEFAULT_AVG_HOR = 50  # the window of the study's later plots (symrep §10)
MAX_LEGEND_RUNS = 12  # beyond this the comparison legend stops being readable
HIGHLIGHT = 8  # how many best runs keep colour and a legend entry in a large sweep


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temp file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _default_avg_hor(runs_df: pd.DataFrame) -> int:
    """The most common ``avg_hor`` in the runs' configs, else ``DEFAULT_AVG_HOR``."""
    cols = [c for c in config_columns(runs_df) if c.split(".")[-1] == "avg_hor"]
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
        swept.update(dict.fromkeys(_frames._flatten(r.params or {})))
    return varying_keys(runs_df, list(swept) if swept else None)


STATES = ("running", "finished", "failed", "stopped", "preempted")


def _cell(value: object) -> str:
    """One Markdown table cell: compact numbers, no pipes or line breaks."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = value if isinstance(value, str) else format_value(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    # Plain string formatting: pandas' to_markdown needs the optional tabulate package.
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|---" * len(headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return f"{value:.4g}"
    return ""


def _duration(seconds: object) -> str:
    if not isinstance(seconds, (int, float)) or seconds != seconds:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _best_rows(best: pd.DataFrame, metric: str, keys: Sequence[str]) -> list[tuple[object, ...]]:
    return [
        (i + 1, r["name"], "**running**" if r["state"] == "running" else r["state"],
         _number(r[f"summary.{metric}"]), *(r[k] for k in keys), _duration(r["runtime"]))
        for i, r in best.iterrows()
    ]  # fmt: skip


def _trend_rows(summary: pd.DataFrame, keys: Sequence[str]) -> list[tuple[object, ...]]:
    rows = []
    for _, r in summary.iterrows():
        cells = []
        for k in keys:
            mode, med = _cell(r[f"{k} mode"]), r.get(f"{k} median")
            med = format_value(med) if isinstance(med, float) and med == med else mode
            text = mode if med == mode else f"{mode} (median {med})"
            cells.append(text if r["count"] else "")
        rows.append((r["trend"], r["count"], *cells))
    return rows


_RULES = (
    "Each run's smoothed `{curve}` is sorted by these rules, in order: *not learning* if it "
    "never rises clearly above chance (or above its start); *learns fast, then drops* if it "
    "ends well below its peak; *learns fast, holds* if it got close to its peak within the "
    "first quarter of its steps; otherwise *slow, still improving*. Cells give the most "
    "common value of each hyperparameter in the trend, and the median of numeric ones."
)


def _markdown(
    *, title: str, runs: pd.DataFrame, best: pd.DataFrame, trends: pd.DataFrame,
    summary: pd.DataFrame, keys: Sequence[str], metric: str, goal: str, curve: str,
    avg_hor: int, band: bool, excluded: Sequence[str], highlight: Sequence[str] | None,
    figures: dict[str, str],
) -> str:  # fmt: skip
    """The self-contained report: text, figure links and tables."""
    counts = Counter(runs["state"])
    states = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    band_text = ", with a band of ±1 std of the raw values in the window" if band else ""
    out = [f"# {title}", "", f"Generated {stamp}.", ""]
    out.append(f"- Runs: {len(runs)} ({', '.join(f'{counts[s]} {s}' for s in states)}).")
    if excluded:
        out.append(f"- Excluded runs whose id or name contains: {', '.join(excluded)}.")
    out.append(f"- Hyperparameters that differ: {', '.join(keys) or 'none'}.")
    out.append(f"- Curves: `{curve}`, trailing mean over avg_hor = {avg_hor} steps{band_text}.")
    out += ["", f"## Smoothed {curve}, all runs", ""]
    if highlight is not None:
        out += [f"The {len(highlight)} best runs by {metric} are coloured, the rest grey.", ""]
    out += [f"![Smoothed {curve} of every run](comparison.png)", ""]
    if figures:
        out += [f"## Smoothed {curve} by hyperparameter", ""]
    for key, name in figures.items():
        out += [f"### {key}", "", f"![Smoothed {curve} by {key}]({name})", ""]

    out += [f"## Best {len(best)} by {metric} ({goal})", ""]
    if (best["state"] == "running").any():
        out += ["Runs marked **running** have not finished; their values are partial.", ""]
    headers = ["#", "run", "state", metric, *keys, "runtime"]
    out += [_table(headers, _best_rows(best, metric, keys)), ""]

    out += ["## Trends", "", _RULES.format(curve=curve), ""]
    out += [_table(["trend", "runs", *keys], _trend_rows(summary, keys)), ""]
    for trend in summary["trend"]:
        names = [str(n) for n in trends.loc[trends["trend"] == trend, "name"]]
        more = f", … ({len(names) - 10} more)" if len(names) > 10 else ""
        if names:
            out.append(f"- *{trend}*: {', '.join(names[:10])}{more}")

    failed = runs[runs["error"].notna() | (runs["state"] == "failed")]
    if len(failed):
        out += ["", "## Failed runs", ""]
        errors = [
            e.strip().splitlines()[0] if isinstance(e, str) and e.strip() else ""
            for e in failed["error"]
        ]
        rows = zip(failed["name"], failed["state"], errors, strict=True)
        out.append(_table(["run", "state", "error"], rows))
    return "\n".join(out) + "\n"


def _kernel_section(kernel: str, figures: Sequence[tuple[str, str]], notes: Sequence[str]) -> str:
    """The report's section of kernel-specific figures (file, caption) and skip notes."""
    if not figures and not notes:
        return ""
    out = ["", f"## {kernel} figures", ""]
    for name, caption in figures:
        out += [f"![{name}]({name})", "", caption, ""]
    if notes:
        out += ["Skipped:", ""] + [f"- {_cell(n)}" for n in notes] + [""]
    return "\n".join(out)


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
        frame = smooth(hist.assign(**{key: values}), key, avg_hor)
        fig = comparison_plot(frame, labels, key, band=band, xlabel=xlabel)
        out.append((key, f"curve_{_file_key(key)}.png", fig))
    return out


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
    records = _frames.exclude(records, exclude)
    hist = history_frame(records)
    if curve not in hist.columns or pd.to_numeric(hist[curve], errors="coerce").isna().all():
        logged = sorted(c for c in hist.columns if c not in ("run_id", "step"))
        raise UsageError(
            f"report: no run (of {len(records)} after exclusions) has any history of "
            f"{curve!r}; logged metrics: {', '.join(logged) or 'none'}"
        )
    runs = runs_frame(records)
    if avg_hor is None:
        avg_hor = _default_avg_hor(runs)
    smoothed = smooth(hist, curve, avg_hor)
    best = best_k(runs, metric, goal, k)
    keys = _swept_keys(records, runs)
    labels = run_labels(runs, keys)
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
        highlight = list(best_k(runs, metric, goal, HIGHLIGHT)["run_id"])
    fig = comparison_plot(
        smoothed, labels, curve, band=band, title=title, highlight=highlight, xlabel=xlabel
    )
    paths.append(save(fig, out_dir / "comparison.png"))
    figures = {}
    for key in keys:
        fig = grouped_plot(smoothed, runs, key, curve, band=band, xlabel=xlabel)
        figures[key] = save(fig, out_dir / f"by_{_file_key(key)}.png").name
        paths.append(out_dir / figures[key])

    text = _markdown(
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
        text += _kernel_section(kernel, [(n, c) for n, _, c in figs], notes)
    if more_curves:
        extra = _more_curves(hist, curve, labels, avg_hor, band=band, xlabel=xlabel)
        paths += [save(fig, out_dir / name) for _, name, fig in extra]
        text += "".join(f"\n## Smoothed {k}\n\n![Smoothed {k}]({n})\n" for k, n, _ in extra)
    paths.append(_write_text(out_dir / "report.md", text))
    return paths
