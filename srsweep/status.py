"""Text tables for ``srsweep status``: one line per run of a sweep."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

from srsweep import kernels
from srsweep.config import flatten

if TYPE_CHECKING:
    from srsweep.backends import Backend

__all__ = ["status_lines", "best_value"]


def best_value(
    history: list[dict[str, Any]], summary: dict[str, Any], metric: str, goal: str
) -> float | None:
    """Best finite value of ``metric`` over the history and summary, by ``goal``."""
    values = [h[metric] for h in history if metric in h] + (
        [summary[metric]] if metric in summary else []
    )
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if goal == "maximize" else min(finite)


def status_lines(backend: Backend, sweep_id: str) -> list[str]:
    from srsweep.spec import SCRIPT
    from srsweep.spec import objective
    from srsweep.spec import swept_keys

    sweep = backend.sweep(sweep_id)
    runs = backend.runs(sweep_id)
    kernel = None if sweep.kernel == SCRIPT else kernels.get(sweep.kernel)
    name, goal = objective(sweep.spec, kernel)
    keys = swept_keys(sweep.spec)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(sweep.counts.items())) or "no runs yet"
    held = any(r.state == "running" for r in runs)  # then: which agent holds each
    rows = []
    for r in runs:
        best = best_value(r.history, r.summary, name, goal)
        flat = flatten(r.params)
        rows.append(
            [
                r.id,
                r.name,
                r.state,
                *([r.agent or "-" if r.state == "running" else "-"] if held else []),
                f"{best:.4g}" if best is not None else "-",
                *(_short(flat.get(k)) for k in keys),
            ]
        )
    header = ["RUN", "NAME", "STATE", *(["AGENT"] if held else []),
              f"BEST {name}" if name else "BEST", *keys]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        f"sweep {sweep.id} {sweep.name}: {sweep.spec.get('method')} sweep of "
        f"{sweep.spec.get('program') if sweep.kernel == SCRIPT else sweep.kernel}, "
        f"{sweep.state}{f' ({sweep.reason})' if sweep.reason else ''}; {counts}"
    ]
    for row in [header, *rows]:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "(" + ",".join(_short(x) for x in v) + ")"
    return "-" if v is None else str(v)
