"""Text tables for ``srsweep status``: one line per run of a sweep."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

from srsweep import kernels
from srsweep.config import flatten

if TYPE_CHECKING:
    from srsweep.backends import Backend

__all__ = ["STANDALONE", "final_value", "standalone_lines", "status_lines"]

STANDALONE = "runs"  # the standing pseudo-sweep of `srsweep run`'s runs


def final_value(summary: dict[str, Any], metric: str) -> float | None:
    """A run's final value of ``metric`` (its summary, as the report ranks runs), when
    finite."""
    value = summary.get(metric)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def status_lines(backend: Backend, sweep_id: str) -> list[str]:
    from srsweep.spec import SCRIPT
    from srsweep.spec import objective
    from srsweep.spec import swept_keys

    sweep = backend.sweep(sweep_id)
    runs = backend.runs(sweep_id, history=False)  # summaries only: fast at any size
    kernel = None if sweep.kernel == SCRIPT else kernels.get(sweep.kernel)
    name, _ = objective(sweep.spec, kernel)
    flats = [flatten(r.params) for r in runs]
    keys = _columns(swept_keys(sweep.spec), flats)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(sweep.counts.items())) or "no runs yet"
    held = any(r.state == "running" for r in runs)  # then: which agent holds each
    rows = []
    for r, flat in zip(runs, flats, strict=True):
        best = final_value(r.summary, name)
        rows.append(
            [
                r.id,
                r.name,
                r.state + _flagged(r.summary),
                *([r.agent or "-" if r.state == "running" else "-"] if held else []),
                f"{best:.4g}" if best is not None else "-",
                *(_short(flat.get(k)) for k in keys),
            ]
        )
    header = [
        "RUN",
        "NAME",
        "STATE",
        *(["AGENT"] if held else []),
        f"FINAL {name}" if name else "FINAL",
        *keys,
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        f"sweep {sweep.id} {sweep.name}: {sweep.spec.get('method')} sweep of "
        f"{sweep.spec.get('program') if sweep.kernel == SCRIPT else sweep.kernel}, "
        f"{sweep.state}{f' ({sweep.reason})' if sweep.reason else ''}; {counts}"
    ]
    for row in [header, *rows]:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    return lines


def standalone_lines(backend: Backend) -> list[str]:
    """The runs made with ``srsweep run`` (no sweep), one line each, with each kernel's
    default metric."""
    runs = backend.runs(None, history=False)
    rows = []
    for r in runs:
        kernel = kernels.get(r.kernel) if r.kernel in kernels.names() else None
        metric = kernel.metric if kernel else ""
        value = final_value(r.summary, metric) if metric else None
        shown = f"{metric}={value:.4g}" if value is not None else "-"
        rows.append([r.id, r.name, r.kernel, r.state, shown])
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) or "none yet"
    lines = [f"standalone runs (srsweep run): {summary}"]
    header = ["RUN", "NAME", "KERNEL", "STATE", "FINAL"]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _columns(keys: list[str], flats: list[dict[str, Any]]) -> list[str]:
    """The parameter columns: each swept key, except that one swept as whole dicts
    (``disc: {values: [{...}, {...}]}``) shows the keys inside it whose values differ
    between the runs (all of them when none differ)."""
    columns = []
    for key in keys:
        inner = list(dict.fromkeys(k for f in flats for k in f if k.startswith(key + ".")))
        if not inner or any(key in f for f in flats):
            columns.append(key)
            continue
        differ = [k for k in inner if len({_short(f.get(k)) for f in flats}) > 1]
        columns.extend(differ or inner)
    return columns


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "(" + ",".join(_short(x) for x in v) + ")"
    return "-" if v is None else str(v)


def _flagged(summary: dict[str, Any]) -> str:
    """`` (NaN/inf: loss)`` for a run whose logged metrics were not all finite."""
    bad = summary.get("nonfinite")
    return f" (NaN/inf: {', '.join(map(str, bad))})" if isinstance(bad, list) and bad else ""
