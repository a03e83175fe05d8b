"""Sort smoothed learning curves into the four trends the SD study reported (symrep §11).

Each run's smoothed curve (from ``frames.smooth``) is judged against a baseline ``b``:
the chance level (0.5 for a two-class accuracy) or, when no chance level is given, the
curve's own first value. With ``P`` the curve's best value, ``F`` its last value and
``G = P - b`` its gain, the rules are tried in order:

1. **not learning**: ``G < margin``: the curve never rises clearly above ``b``.
2. **learns fast, then drops**: ``P - F > max(drop * G, margin)``: it lost a good part
   of what it had learned by the end. The study saw this only after fast starts; a
   slow run that falls back lands here too.
3. **learns fast, holds**: it first got within ``reach`` (90 %) of its gain in the
   first ``fast_frac`` (a quarter) of its logged steps and ended near its peak.
4. **slow, still improving**: otherwise: most of its gain came late and it ended near
   its peak, so it was still climbing when it stopped.

The first ``warmup`` steps of each run (pass the smoothing window) are left out of
the judgement, because there the window holds only a few noisy values and a single
lucky one can look like a peak. Runs with no smoothed value are labelled ``"no data"``.
For a metric that is minimised the curve is negated first, so "gain" always means
improvement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from srsweep.errors import UsageError

__all__ = ["TRENDS", "NO_DATA", "classify", "characterise"]

FAST_HOLDS = "learns fast, holds"
FAST_DROPS = "learns fast, then drops"
SLOW = "slow, still improving"
FLAT = "not learning"
TRENDS = (FAST_HOLDS, FAST_DROPS, SLOW, FLAT)
NO_DATA = "no data"


def _judge(
    y: npt.NDArray[np.float64],
    s: npt.NDArray[np.float64],
    b: float,
    margin: float,
    drop: float,
    fast_frac: float,
    reach: float,
) -> tuple[str, float]:
    """The trend of curve ``y`` over steps ``s`` against baseline ``b``, and the
    fraction of its span it took to get within ``reach`` of its gain."""
    peak, final = float(y.max()), float(y[-1])
    gain = peak - b
    if gain < margin:
        return FLAT, np.nan
    span = s[-1] - s[0]
    first = int(np.argmax(y >= b + reach * gain))  # first index at or above the mark
    reach_at = float((s[first] - s[0]) / span) if span > 0 else 0.0
    if peak - final > max(drop * gain, margin):
        return FAST_DROPS, reach_at
    if reach_at <= fast_frac:
        return FAST_HOLDS, reach_at
    return SLOW, reach_at


def classify(
    smoothed_df: pd.DataFrame,
    metric_col: str,
    *,
    chance: float | None = 0.5,
    margin: float = 0.05,
    drop: float = 0.25,
    fast_frac: float = 0.25,
    reach: float = 0.9,
    warmup: float = 0.0,
    goal: str = "maximize",
    step_col: str = "step",
) -> pd.DataFrame:
    """Classify each run's smoothed curve into one of ``TRENDS`` (see the module doc).

    Args:
        smoothed_df: A frame from ``frames.smooth``.
        metric_col: The smoothed column, e.g. ``"acc_smooth"``.
        chance: Baseline level; None uses each curve's first value.
        margin: Least gain (in the metric's units) that counts as learning.
        drop: Fraction of the gain a curve must lose by its end to count as dropping.
        fast_frac: Share of the run's steps within which a fast learner gets close.
        reach: How close (fraction of the gain) counts as having learned.
        warmup: Steps at the start of each run to ignore (the smoothing window).
        goal: ``"maximize"`` or ``"minimize"``: which direction is improvement.
        step_col: The step column.

    Returns:
        One row per run, in first-appearance order: ``run_id``, ``trend``, ``peak`` and
        ``final`` (best and last smoothed value, in the metric's units) and
        ``reach_at`` (fraction of the run's steps taken to get within ``reach``).
    """
    if goal not in ("maximize", "minimize"):
        raise UsageError(f"goal must be maximize or minimize, but got {goal!r}")
    sign = 1.0 if goal == "maximize" else -1.0
    baseline = None if chance is None else sign * chance
    rows: list[dict[str, Any]] = []
    for run_id, g in smoothed_df.groupby("run_id", sort=False):
        g = g.sort_values(step_col, kind="stable")
        y = sign * pd.to_numeric(g[metric_col], errors="coerce").to_numpy(dtype=float)
        s = g[step_col].to_numpy(dtype=float)
        keep = ~np.isnan(y)
        y, s = y[keep], s[keep]
        row: dict[str, Any] = {"run_id": run_id, "trend": NO_DATA}
        if len(y):
            # Without a chance level the baseline is where the run started, taken
            # before the warm-up is cut so that a fast early gain still counts.
            b = float(y[0]) if baseline is None else baseline
            settled = s >= s[0] + warmup
            if settled.any():  # a run shorter than the warm-up is judged on all it has
                y, s = y[settled], s[settled]
            trend, reach_at = _judge(y, s, b, margin, drop, fast_frac, reach)
            row.update(trend=trend, peak=sign * y.max(), final=sign * y[-1], reach_at=reach_at)
        rows.append(row)
    return pd.DataFrame(rows, columns=["run_id", "trend", "peak", "final", "reach_at"])


def _mode(values: pd.Series) -> Any:
    """Most common non-missing value; ties go to the value seen first."""
    counts = Counter(v for v in values if not (isinstance(v, float) and np.isnan(v)))
    return counts.most_common(1)[0][0] if counts else None


def characterise(
    runs_df: pd.DataFrame, trends_df: pd.DataFrame, keys: Sequence[str]
) -> pd.DataFrame:
    """Per trend: how many runs, and the typical value of each hyperparameter.

    Args:
        runs_df: A frame from ``frames.runs_frame``.
        trends_df: A frame from ``classify``.
        keys: Hyperparameter columns to describe, usually the varying ones.

    Returns:
        One row per trend, all four in ``TRENDS`` order (count 0 when empty) plus
        ``"no data"`` when present: ``trend``, ``count``, then ``"<key> mode"`` for
        each key and ``"<key> median"`` for each numeric key.
    """
    merged = trends_df[["run_id", "trend"]].merge(runs_df, on="run_id", how="left")
    numeric = [
        k
        for k in keys
        if pd.api.types.is_numeric_dtype(runs_df[k]) and not pd.api.types.is_bool_dtype(runs_df[k])
    ]
    order = list(TRENDS) + ([NO_DATA] if (trends_df["trend"] == NO_DATA).any() else [])
    rows = []
    for trend in order:
        members = merged[merged["trend"] == trend]
        row: dict[str, Any] = {"trend": trend, "count": len(members)}
        for k in keys:
            row[f"{k} mode"] = _mode(members[k])
            if k in numeric:
                row[f"{k} median"] = members[k].median() if len(members) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
