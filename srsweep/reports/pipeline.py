"""Write a sweep's report: tables, figures, ``report.md`` and ``report.html`` in one folder.

The stages run in one direction: ``read`` reads the runs' logged metrics once, as the
columns the report needs; ``analysis.analyse`` builds the frames and every analysis
from the run records and those histories; the figures are drawn from that ``Study``; the
``document`` blocks are rendered as Markdown and as HTML. ``report_sweep`` picks what a
sweep is reported by (its kernel's curve, or a script's metric) from the spec;
``write_report`` writes a report of any runs, given the metric, goal and curve. Every
file is written through ``store.atomic_write``.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import json
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd

from srsweep import kernels
from srsweep import store
from srsweep.errors import UsageError
from srsweep.reports import frames
from srsweep.reports.analysis import Study
from srsweep.reports.analysis import analyse
from srsweep.reports.blocks import Image
from srsweep.reports.document import Files
from srsweep.reports.document import curves_section
from srsweep.reports.document import kernel_section
from srsweep.reports.document import report_blocks
from srsweep.reports.forked import Forked
from srsweep.reports.forked import Tickets
from srsweep.reports.hparam_plots import importance_plot
from srsweep.reports.hparam_plots import metric_plot
from srsweep.reports.hparam_plots import parallel_plot
from srsweep.reports.html import render_html
from srsweep.reports.interactive import importance_figure
from srsweep.reports.interactive import interactive_figures
from srsweep.reports.kernel_plots import KERNEL_PLOTS
from srsweep.reports.kernel_plots import kernel_figures
from srsweep.reports.levels import numeric_order
from srsweep.reports.markdown import render_markdown
from srsweep.reports.plots import comparison_plot
from srsweep.reports.plots import grouped_plot
from srsweep.reports.plots import save
from srsweep.reports.read import Logged
from srsweep.reports.read import read_logged
from srsweep.spec import objective

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord

__all__ = ["report_sweep", "write_report", "write_study", "csv_text", "csv_parts"]


def report_sweep(
    spec: dict[str, Any],
    runs: Sequence[RunRecord],
    out_dir: Path,
    *,
    sweep_id: str,
    title: str,
    metric: str | None = None,
    goal: str | None = None,
    curve: str | None = None,
    avg_hor: int | None = None,
    exclude: Sequence[str] = (),
    band: bool = True,
    backend: Backend | None = None,
) -> list[Path]:
    """Write the report of a sweep's runs (see ``write_report``), judged as the spec says
    unless ``metric`` or ``goal`` say otherwise.

    A kernel's sweep (its ``program`` names a kernel) ranks by the spec's metric, else
    the kernel's, plots the kernel's curve and adds the kernel's own figures. A
    script's sweep plots and ranks by the spec's metric, and plots every other metric
    the runs logged too. A ``metric`` other than the spec's is also the curve plotted
    and classified (unless ``curve`` names one), so that the ranking, the importance,
    the trends and their drivers and the best run all answer for it.

    Args:
        spec: The sweep's spec as registered (a W&B sweep config).
        runs: Its runs, one attempt per trial.
        out_dir: Folder for the files.
        sweep_id: The sweep as the user named it, for messages.
        title: Report and figure title.
        metric: Logged metric to rank by instead of the spec's (any the runs logged).
        goal: ``"maximize"`` or ``"minimize"`` for ``metric``, else for the spec's
            metric. Default: the spec's goal for its metric, W&B's ``"minimize"``
            for another.
        curve: Logged metric to plot and classify instead of the default.
        avg_hor: Smoothing window; None takes the runs' own.
        exclude: Drop runs whose id or name contains any of these.
        band: Shade ±1 std around the curves.
        backend: Where the runs are: their histories are read from its columns, only
            the keys the report needs at every step (``read.read_logged``); None: the
            records carry their history.

    Returns:
        The written paths, as ``write_report`` lists them.

    Raises:
        UsageError: a script's spec names no metric and no ``metric`` or ``curve`` is
            given (the message lists what the runs logged); ``metric`` is not logged by
            any run (the message lists what was, with a close match), or was logged
            only as a final value and no ``curve`` is given; or as ``write_report``.
    """
    program = str(spec.get("program"))
    kernel = kernels.get(program) if program in kernels.names() else None
    judged_by, spec_goal = objective(spec, kernel)
    runs = frames.exclude(runs, exclude)
    last = backend.last_logged([r.id for r in runs]) if backend is not None else None
    stepped = _stepped(runs, last)
    if metric is not None and metric != judged_by:
        goal = goal or "minimize"  # the spec's goal is its own metric's; W&B's default
        _check_logged(runs, stepped, metric, sweep_id)
        if not curve and stepped and metric not in stepped:
            raise UsageError(
                f"report: {metric!r} is only a final value of sweep {sweep_id}'s runs, not "
                "logged over steps; pass --curve METRIC to name the curve to classify"
            )
        curve = curve or metric
    elif judged_by:
        hint = "the spec's metric.name; pass --metric NAME"
        _check_logged(runs, stepped, judged_by, sweep_id, hint)
    metric, goal = metric or judged_by, goal or spec_goal
    # every key at every step for a script's curves and a kernel's own figures; else
    # only the curve (smoothed, classified); the rest at the drawn steps
    need = None
    if kernel is not None and kernel.name not in KERNEL_PLOTS:
        need = [curve or kernel.curve]
    # the histories are read once the analyses' child processes have started
    # (analysis.analyse_frames), so that SciPy and scikit-learn import meanwhile
    logged: Logged | Callable[[], Logged] | None = None  # the records' own history
    if backend is not None:
        logged = functools.partial(read_logged, backend, [r.id for r in runs], need, last)
    if kernel is not None:
        return write_report(
            runs,
            out_dir,
            metric=metric,
            goal=goal,
            curve=curve or kernel.curve,
            avg_hor=avg_hor,
            exclude=exclude,
            band=band,
            title=title,
            kernel=kernel.name,
            spec=spec,
            logged=logged,
            last=last,
        )
    curve = curve or metric  # a script: its spec's metric, and every other metric it logged
    if not curve:
        raise UsageError(
            f"report: sweep {sweep_id} runs a script and its spec names no metric; "
            f"pass --metric or --curve (logged: {', '.join(sorted(stepped)) or 'nothing'})"
        )
    return write_report(
        runs,
        out_dir,
        metric=metric or curve,
        goal=goal,
        curve=curve,
        avg_hor=avg_hor,
        exclude=exclude,
        band=band,
        title=title,
        more_curves=True,
        spec=spec,
        logged=logged,
        last=last,
    )


def _stepped(runs: Sequence[RunRecord], last: dict[str, dict[str, Any]] | None) -> set[str]:
    """The metrics the runs logged over steps (from the ledger's last logged values,
    or from the records' own history when there are none)."""
    if last is None:
        return {k for r in runs for h in r.history for k in h} - {"_step"}
    return {k for values in last.values() for k in values}


def _check_logged(
    runs: Sequence[RunRecord], stepped: set[str], metric: str, sweep_id: str, hint: str = ""
) -> None:
    """Check ``metric`` is among what the runs logged at all (``stepped``, over steps,
    or as a final value). Runs that logged nothing yet are not judged: the report says
    so later.

    Raises:
        UsageError: no run logged ``metric``; the message names what they logged, a
            close match and ``hint``.
    """
    final = {k for r in runs for k, v in r.summary.items() if _is_number(v)}
    logged = sorted(stepped | final)
    if metric in logged or not logged:
        return
    close = difflib.get_close_matches(metric, logged, n=1)
    raise UsageError(
        f"report: no run of sweep {sweep_id} logged {metric!r}"
        + (f" ({hint})" if hint else "")
        + f"; logged: {', '.join(logged)}"
        + (f" (did you mean {close[0]!r}?)" if close else "")
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
    spec: dict[str, Any] | None = None,
    logged: Logged | Callable[[], Logged] | None = None,
    last: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    """Write a sweep's report (CSV tables, PNG figures, ``report.md``, ``report.html``).

    Args:
        records: The sweep's runs; running ones are included with partial curves.
        out_dir: Folder for the files (created if missing); files are replaced
            atomically.
        metric: Summary metric the report ranks by, e.g. ``"avg_acc"`` (its final
            value per run).
        goal: ``"maximize"`` or ``"minimize"`` for ``metric`` (and for ``curve``).
        curve: Logged metric to smooth and plot, e.g. ``"acc"``.
        avg_hor: Smoothing window in steps; None takes the most common ``avg_hor``
            in the runs' configs, or 50.
        exclude: Drop runs whose id or name contains any of these.
        band: Shade ±1 std around the curves (over seeds for replicated
            configurations, else of the raw values in the window).
        title: Report and figure title; default from the sweep id.
        k: Rows in the best-k table.
        kernel: The runs' kernel; one with a ``KERNEL_PLOTS`` entry adds its figures
            (e.g. ``stn_dist.png``) and a section to the report. Runs whose model file
            is missing or unreadable are left out of those figures, with a note. A
            kernel also gives the best run's ``srsweep run`` command.
        more_curves: Also plot every other numeric metric the runs logged, smoothed
            the same way (``curve_<metric>.png``), e.g. for a script's sweep.
        spec: The sweep's spec, for the keys drawn on a log axis.
        logged: The runs' histories (``read.read_logged``; it must hold every key
            at every step for a kernel's figures and ``more_curves``), or what reads
            them (``analysis.analyse`` calls it); default: the records' own. Of the
            records left after ``exclude``.
        last: Each run's last logged values, when ``logged`` is a reader.

    Returns:
        The written paths: ``runs.csv``, ``configs.csv``, ``history.csv`` (with the
        smoothed curve), ``best.csv``, ``trends.csv`` (trend per run and of its
        configuration), ``curves.csv`` (curves over seeds, when some configuration has
        several), ``importance.csv`` and ``trend_drivers.csv`` (when they can be
        made), ``comparison.png``, ``importance.png``, ``metric_vs_<key>.png`` per
        swept key, ``parallel.png``, ``by_<key>.png`` per swept key, the kernel's
        figures, ``curve_<metric>.png`` per other metric with ``more_curves``,
        ``report.html`` (the report with interactive figures, self-contained) and
        ``report.md``.

    Raises:
        UsageError: no run logged ``curve``, no run has ``metric``, a bad ``goal`` or
            ``avg_hor``.
    """
    records = frames.exclude(records, exclude)
    study = analyse(
        records,
        metric=metric,
        goal=goal,
        curve=curve,
        avg_hor=avg_hor,
        band=band,
        title=title,
        k=k,
        kernel=kernel,
        spec=spec,
        excluded=exclude,
        logged=logged,
        last=last,
        wait=False,  # the figures are drawn while the statistics child finishes
    )
    try:
        return write_study(study, Path(out_dir), records, more_curves=more_curves)
    finally:
        if study.pending is not None:  # (write_study failed before it settled them)
            study.pending.close()


def write_study(
    study: Study,
    out_dir: Path,
    records: Sequence[RunRecord] = (),
    *,
    more_curves: bool = False,
) -> list[Path]:
    """Write the files of an analysed sweep (``write_report`` after ``analyse``).

    The CSV tables and PNG figures are written by a forked child process (``forked``)
    while this one builds the interactive figures, and then by both: a report has two
    cores to use. The files are the same whoever writes them. A study whose importance
    and drivers are still ``pending`` has them waited for only once everything else
    has been started; this process then writes their files.

    Args:
        study: The sweep's analyses.
        out_dir: Folder for the files (created if missing).
        records: The runs, for a kernel's own figures (``study.kernel``).
        more_curves: As ``write_report``.

    Returns:
        The written paths, in ``write_report``'s order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = Files(html="report.html")
    tables = _tables(study)
    files.tables += [(name, what) for name, what, _ in tables]
    figures = _figures(study, files)
    work: list[tuple[str, Callable[[], Path]]] = [
        (name, functools.partial(_write_csv, out_dir / name, df)) for name, _, df in tables
    ]
    work += [(name, functools.partial(_save, draw, out_dir / name)) for name, draw in figures]
    # the longest first, so that neither process is left with a long one at the end
    # while the other waits
    tasks = [task for _, task in sorted(work, key=lambda w: _longest_first(w[0]))]
    # Both processes write the tables and draw the figures, each taking the next task
    # not taken: the child from the start, this one once it has built the interactive
    # figures, the blocks and the kernel's figures, so that neither waits long.
    names = [name for name, _, _ in tables] + [name for name, _ in figures]
    with Tickets(len(tasks)) as tickets, Forked(lambda: _work(tasks, tickets)) as child:
        twins = interactive_figures(study)
        if study.pending is not None:
            study = study.settled()
            names, late = _settled(study, out_dir, files, {name for name, _ in work})
            twins.update(late)
        blocks = report_blocks(study, files)
        more: list[Path] = []
        kernel = study.kernel
        if kernel is not None and kernel in KERNEL_PLOTS:  # (else it draws nothing)
            figs, notes = kernel_figures(
                kernel, records, study.runs, frames.plain_ids(study.history)
            )
            more += [save(fig, out_dir / name) for name, fig, _ in figs]
            blocks += kernel_section(kernel, [(n, c) for n, _, c in figs], notes)
        if more_curves:
            extra = _more_curves(study)
            more += [save(fig, out_dir / name) for _, name, fig in extra]
            blocks += curves_section([(key, name) for key, name, _ in extra])
        markdown = render_markdown(blocks)
        # the page embeds the PNGs that have no interactive twin: made now when none of
        # them is still to be drawn by the tasks, else once every one is
        embedded = {b.file for b in blocks if isinstance(b, Image) and b.interactive not in twins}
        page = None if embedded & set(names) else render_html(blocks, study, twins, out_dir)
        _work(tasks, tickets)
        child.result()
    paths = [out_dir / name for name in names] + more
    if page is None:
        page = render_html(blocks, study, twins, out_dir)
    paths.append(_write_text(out_dir / "report.html", page))
    paths.append(_write_text(out_dir / "report.md", markdown))
    return paths


def _settled(
    study: Study, out_dir: Path, files: Files, made: set[str]
) -> tuple[list[str], dict[str, Any]]:
    """Write the tables and figures of a settled ``study`` that are not in ``made`` (its
    importance and drivers); give the names of all its tables and figures, in order, and
    the interactive twins of those written here."""
    tables, figures = _tables(study), _figures(study, files)
    for name, what, df in tables:
        if name not in made:
            files.tables.append((name, what))
            _write_csv(out_dir / name, df)
    for name, draw in figures:
        if name not in made:
            _save(draw, out_dir / name)
    twins = {} if study.importance is None else {"importance": importance_figure(study)}
    return [name for name, _, _ in tables] + [name for name, _ in figures], twins


def _longest_first(name: str) -> int:
    """A file's place in the order the report's processes make them: history.csv
    (~1.5 s at 1000 runs), the figures of every run's curve (~0.4 s each), the other
    figures (~0.1-0.3 s), the other tables (milliseconds)."""
    if name == "history.csv":
        return 0
    if name.startswith("by_") or name == "comparison.png":
        return 1
    return 2 if name.endswith(".png") else 3


def _work(tasks: Sequence[Callable[[], Path]], tickets: Tickets) -> None:
    """Run each task whose ticket this process takes."""
    for i in tickets:
        tasks[i]()


def _save(draw: Callable[[], Figure], path: Path) -> Path:
    return save(draw(), path)


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV, with list, tuple and dict cells as JSON (``[2, 0]``, not ``(2, 0)``)."""
    return "".join(csv_parts(df))


CSV_ROWS = 20_000  # rows per part of a long table: its cells' strings are made a part at a time


def csv_parts(df: pd.DataFrame) -> Iterator[str]:
    """``csv_text(df)`` in parts (the header with the first ``CSV_ROWS`` rows, then the
    next), so that a long table is written without holding every cell as a string."""

    def cell(v: Any) -> Any:
        return json.dumps(_plain(v)) if isinstance(v, (list, tuple, dict)) else v

    out = df.copy()
    kinds = {}
    for col in out.columns:
        kinds[col] = out[col].dtype.kind
        if kinds[col] == "O":
            kinds[col] = pd.api.types.infer_dtype(out[col], skipna=True)
            # a column of plain scalars (run ids, states) has nothing to turn into JSON
            if kinds[col] not in _SCALARS:
                out[col] = out[col].map(cell)
    if not (out.columns.is_unique and all(k in _PLAIN for k in kinds.values())):
        yield str(out.to_csv(index=False))
        return
    yield _plain_csv(out.iloc[:CSV_ROWS])
    for start in range(CSV_ROWS, len(out), CSV_ROWS):
        yield _plain_csv(out.iloc[start : start + CSV_ROWS], header=False)


_PLAIN = ("f", "i", "u", "b", "string")  # kinds the csv module writes as pandas would


def _plain_csv(df: pd.DataFrame, *, header: bool = True) -> str:
    """``df.to_csv(index=False)`` of numbers and strings, the same text made cell by
    cell: pandas formats each float through NumPy, and the csv module calls ``repr`` on
    each one itself, both 2-3x slower on a long history than ``repr`` mapped over a
    column (the csv module still quotes the header and any string that needs it)."""
    head = _csv_row(list(map(str, df.columns))) + "\n" if header else ""
    if not len(df.columns):
        return str(df.to_csv(index=False)) if header else "\n" * len(df)
    if len(df.columns) < 2:  # a lone empty cell is written '""': the csv module's way
        buf = io.StringIO()
        rows = [[None if v is None or v != v else v] for v in df.iloc[:, 0].tolist()]
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return head + buf.getvalue()
    if not len(df):
        return head
    cols = [_cells(df[col].to_numpy()) for col in df.columns]
    return head + "\n".join(map(",".join, zip(*cols, strict=True))) + "\n"


def _cells(values: np.ndarray[Any, Any]) -> list[str]:
    """One column's CSV cells, as the csv module writes them."""
    kind = values.dtype.kind
    if kind == "f":  # repr, as pandas; NaN as an empty cell
        cells = list(map(repr, values.tolist()))
        for i in np.flatnonzero(np.isnan(values)):
            cells[i] = ""
        return cells
    if kind in "iub":
        return list(map(str, values.tolist()))
    return [
        "" if v is None or v != v else _csv_row([v]) if _NEEDS_QUOTES.search(v) else v
        for v in values.tolist()
    ]


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_row(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()[:-1]


_SCALARS = ("string", "empty", "boolean", "integer", "floating", "mixed-integer-float")


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v.item() if hasattr(v, "item") else v


def _runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs frame with one runtime column (``frames.runs_frame``'s: the runtime the
    run reported, else the ledger's start-to-end time)."""
    return runs.drop(columns="summary.runtime", errors="ignore")


def _tables(study: Study) -> list[tuple[str, str, pd.DataFrame | Callable[[], pd.DataFrame]]]:
    """(file, what it holds, frame or what makes it) of every table the report writes."""
    out: list[tuple[str, str, pd.DataFrame | Callable[[], pd.DataFrame]]] = [
        (
            "runs.csv",
            "one row per run: state, config, summary metrics, runtime, config number",
            _runs_table(study.runs),
        ),
        (
            "configs.csv",
            "one row per configuration: its hyperparameters, seeds, runs, "
            f"{study.metric} over seeds and its trend",
            study.configs,
        ),
        ("history.csv", _history_text(study), functools.partial(_history_table, study)),
        ("best.csv", f"the best runs by {study.metric}", _runs_table(study.best)),
        ("trends.csv", "each run's trend, and its configuration's over seeds", study.trends),
    ]
    if study.replicated:
        out.append(
            (
                "curves.csv",
                f"per configuration and step: mean, std and count over seeds "
                f"of the smoothed `{study.curve}` (at the steps of history.csv)",
                study.curves,
            )
        )
    if study.importance is not None:
        out.append(
            (
                "importance.csv",
                "importance of each hyperparameter, with its spread",
                study.importance,
            )
        )
    if study.drivers is not None:
        out.append(
            ("trend_drivers.csv", "every trend × value test (Fisher's exact test)", study.drivers)
        )
    return out


def _history_text(study: Study) -> str:
    """What history.csv holds: every logged row, or (for long runs) the drawn steps."""
    what = f"logged rows, with the smoothed `{study.curve}` and its std"
    if len(study.plotted) == len(study.smoothed):
        return f"every one of the {what}"
    return (
        f"the {what}, at the {study.plotted['step'].nunique()} of "
        f"{study.smoothed['step'].nunique()} logged steps the figures draw (every k-th, and "
        "each run's last); every row is in the ledger (`srsweep.history(SWEEP_ID)`)"
    )


def _history_table(study: Study) -> pd.DataFrame:
    """history.csv's rows: the drawn ones, with every logged key (those ``read`` left
    out read now, by whichever process writes it, beside the figures being drawn)."""
    if study.rest is None:
        return study.plotted
    extra, keys = study.rest.at(study.plotted.index.to_numpy())
    smoothed = [f"{study.curve}_smooth", f"{study.curve}_std"]
    return study.plotted.join(extra)[["run_id", "step", *keys, *smoothed]]


def _write_csv(path: Path, df: pd.DataFrame | Callable[[], pd.DataFrame]) -> Path:
    parts = csv_parts(df if isinstance(df, pd.DataFrame) else df())
    store.atomic_write(path, lambda tmp: _write_parts(tmp, parts))
    return path


def _write_parts(path: str, parts: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(parts)


def _figures(study: Study, files: Files) -> list[tuple[str, Callable[[], Figure]]]:
    """(file name, what draws it) of the report's own figures, noting each in ``files``
    now; a figure is drawn only when its function is called."""
    curve, keys, chance, value_range = study.curve, study.keys, study.chance, study.value_range
    out: list[tuple[str, Callable[[], Figure]]] = []
    if study.replicated:
        configs = numeric_order(study.configs, keys)
        labels = study.config_labels.reindex(configs["config"])
        labels.index = configs["config"].astype(str).to_numpy()
        data = study.curves.rename(columns={"mean": f"{curve}_smooth", "std": f"{curve}_std"})
        data = data.assign(run_id=data["config"].astype(str))
    else:
        runs = numeric_order(study.runs, keys)
        labels = frames.run_labels(runs, keys)
        running = labels.index.isin(runs.loc[runs["state"] == "running", "run_id"])
        labels = labels.where(~running, labels + " (running)")
        data = study.plotted
    comparison = functools.partial(
        comparison_plot,
        data,
        labels,
        curve,
        band=study.band,
        title=study.title,
        highlight=study.highlight,
        xlabel=study.xlabel,
        chance=chance,
        value_range=value_range,
    )
    out.append((files.comparison, comparison))
    if study.importance is not None:
        files.importance = "importance.png"
        out.append(
            (files.importance, functools.partial(importance_plot, study.importance, study.metric))
        )
    for key in keys:
        name = f"metric_vs_{_file_key(key)}.png"
        files.metric_vs[key] = name
        draw = functools.partial(
            metric_plot,
            study.runs,
            key,
            study.metric,
            study.levels[key],
            log=key in study.log_keys,
        )
        out.append((name, draw))
    if keys and study.runs[f"summary.{study.metric}"].notna().sum() > 1:
        files.parallel = "parallel.png"
        draw = functools.partial(
            parallel_plot, study.runs, keys, study.metric, study.levels, study.log_keys, study.goal
        )
        out.append((files.parallel, draw))
    for key in keys:
        draw = functools.partial(
            grouped_plot,
            study.plotted,
            study.runs,
            key,
            curve,
            band=study.band,
            xlabel=study.xlabel,
            levels=study.levels[key],
            chance=chance,
            value_range=value_range,
        )
        files.by_key[key] = f"by_{_file_key(key)}.png"
        out.append((files.by_key[key], draw))
    return out


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8 with newlines as given, atomically."""
    store.atomic_write(path, lambda tmp: Path(tmp).write_text(text, "utf-8", newline=""))
    return path


def _file_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]", "_", key)


def _more_curves(study: Study) -> list[tuple[str, str, Figure]]:
    """(metric, file name, comparison figure) per numeric logged metric but the curve."""
    hist, labels = study.history, frames.run_labels(study.runs, study.keys)
    out = []
    for key in hist.columns:
        if key in ("run_id", "step", "epoch", study.curve) or key.startswith("_"):
            continue
        values = pd.to_numeric(hist[key], errors="coerce")
        if values.isna().all() or hist[key].map(lambda v: isinstance(v, bool)).any():
            continue
        frame = frames.smooth(hist.assign(**{key: values}), key, study.avg_hor)
        fig = comparison_plot(frame, labels, key, band=study.band, xlabel=study.xlabel)
        out.append((key, f"curve_{_file_key(key)}.png", fig))
    return out
