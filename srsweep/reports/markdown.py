"""Render a sweep's report as Markdown: the summary, figure links and tables.

Pure text from the frames ``pipeline.write_report`` builds; nothing here reads runs or
writes files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from srsweep.reports.frames import format_value

__all__ = ["STATES", "report_markdown", "kernel_section", "curves_section"]

STATES = ("running", "finished", "failed", "stopped", "preempted")  # in the order listed

_RULES = (
    "Each run's smoothed `{curve}` is sorted by these rules, in order: *not learning* if it "
    "never rises clearly above chance (or above its start); *learns fast, then drops* if it "
    "ends well below its peak; *learns fast, holds* if it got close to its peak within the "
    "first quarter of its steps; otherwise *slow, still improving*. Cells give the most "
    "common value of each hyperparameter in the trend, and the median of numeric ones."
)


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


def report_markdown(
    *, title: str, runs: pd.DataFrame, best: pd.DataFrame, trends: pd.DataFrame,
    summary: pd.DataFrame, keys: Sequence[str], metric: str, goal: str, curve: str,
    avg_hor: int, band: bool, excluded: Sequence[str], highlight: Sequence[str] | None,
    figures: dict[str, str],
) -> str:  # fmt: skip
    """The report's text, figure links and tables.

    Args:
        title: The report's heading.
        runs: ``frames.runs_frame`` of the reported runs.
        best: ``frames.best_k`` of ``runs`` by ``metric``.
        trends: ``trends.classify``'s trend per run, with the runs' name, state and
            ``keys`` columns.
        summary: ``trends.characterise`` of the trends over ``keys``.
        keys: The swept hyperparameters that differ, in column order.
        metric: The summary metric ``best`` is ranked by; ``goal`` its direction.
        curve: The smoothed logged metric; ``avg_hor`` its window, ``band`` whether
            the figures shade ±1 std.
        excluded: The ``--exclude`` patterns, for the summary.
        highlight: Run ids coloured in the comparison figure, or None when all are.
        figures: Swept key -> file name of its grouped figure (``comparison.png`` is
            always linked).
    """
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


def kernel_section(kernel: str, figures: Sequence[tuple[str, str]], notes: Sequence[str]) -> str:
    """The section of a kernel's own figures (file name, caption) and skip notes; ""
    when it has neither."""
    if not figures and not notes:
        return ""
    out = ["", f"## {kernel} figures", ""]
    for name, caption in figures:
        out += [f"![{name}]({name})", "", caption, ""]
    if notes:
        out += ["Skipped:", ""] + [f"- {_cell(n)}" for n in notes] + [""]
    return "\n".join(out)


def curves_section(curves: Sequence[tuple[str, str]]) -> str:
    """One section per other logged metric (metric, figure file name)."""
    return "".join(f"\n## Smoothed {key}\n\n![Smoothed {key}]({name})\n" for key, name in curves)
