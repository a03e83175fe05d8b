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
from srsweep.reports.frames import by_step
from srsweep.reports.frames import run_rows

__all__ = [
    "TRENDS",
    "NO_DATA",
    "SEED_DEPENDENT",
    "CHANCE",
    "classify",
    "characterise",
    "rules",
    "metric_range",
]

FAST_HOLDS = "learns fast, holds"
FAST_DROPS = "learns fast, then drops"
SLOW = "slow, still improving"
FLAT = "not learning"
TRENDS = (FAST_HOLDS, FAST_DROPS, SLOW, FLAT)
NO_DATA = "no data"
SEED_DEPENDENT = "seed-dependent"  # a configuration whose seeds show no majority trend
CHANCE = 0.5  # a two-class accuracy's chance level (the sd critic's task)


def metric_range(name: str, values: pd.Series) -> tuple[float, float] | None:
    """The range a metric can take, when it has one: [0, 1] for an accuracy.

    A metric counts as an accuracy when its name contains "acc" and every value seen
    lies in [0, 1]: the kernels declare no ranges, so the name and the values are what
    there is to go by. Accuracies are judged against ``CHANCE`` and their bands clipped
    to the range.
    """
    if "acc" not in name.lower():
        return None
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if len(v) and v.min() >= 0.0 and v.max() <= 1.0:
        return (0.0, 1.0)
    return None


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
    values = sign * pd.to_numeric(smoothed_df[metric_col], errors="coerce").to_numpy(dtype=float)
    steps = smoothed_df[step_col].to_numpy(dtype=float)
    for run_id, idx in run_rows(smoothed_df).items():
        idx = by_step(idx, steps)
        y, s = values[idx], steps[idx]
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


def rules(curve: str, goal: str) -> str:
    """The classification rules in words, for the report; a minimised curve improves
    by falling, so its rules say "improves" where a maximised one "rises"."""
    better = "rises clearly above chance (or above its start)"
    worse = "ends well below its peak"
    if goal == "minimize":
        better = "improves clearly on chance (or on its start)"
        worse = "ends well short of its best value"
    return (
        f"Each run's smoothed `{curve}` is sorted by these rules, in order: *not learning* if "
        f"it never {better}; *learns fast, then drops* if it {worse}; *learns fast, holds* if "
        "it got close to its best within the first quarter of its steps; otherwise *slow, "
        "still improving*."
    )


def characterise(configs_df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per trend: how many configurations and runs, and each hyperparameter's typical value.

    Args:
        configs_df: A frame from ``seeds.configs_frame`` (one row per configuration,
            with its ``trend`` over seeds and its number of ``seeds``).
        keys: Hyperparameter columns to describe, usually the varying ones.

    Returns:
        One row per trend, all four in ``TRENDS`` order (counts 0 when empty), then
        ``"seed-dependent"`` and ``"no data"`` when present: ``trend``,
        ``configurations``, ``runs``, then ``"<key> mode"`` for each key and ``"<key>
        median"`` for each numeric key, over the trend's configurations.
    """
    numeric = [
        k
        for k in keys
        if pd.api.types.is_numeric_dtype(configs_df[k])
        and not pd.api.types.is_bool_dtype(configs_df[k])
    ]
    present = set(configs_df["trend"])
    order = list(TRENDS) + [t for t in (SEED_DEPENDENT, NO_DATA) if t in present]
    rows = []
    for trend in order:
        members = configs_df[configs_df["trend"] == trend]
        row: dict[str, Any] = {
            "trend": trend,
            "configurations": len(members),
            "runs": int(members["seeds"].sum()),
        }
        for k in keys:
            row[f"{k} mode"] = _mode(members[k])
            if k in numeric:
                row[f"{k} median"] = members[k].median() if len(members) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
