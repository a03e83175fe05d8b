"""Which hyperparameters matter: permutation importance of a random forest.

A scikit-learn ``RandomForestRegressor`` learns the sweep's metric (each run's final
summary value) from the swept hyperparameters. Each of ``RESAMPLES`` bootstrap
resamples of the runs fits a forest on the drawn runs and measures, on the runs left
out of the draw, how much worse its predictions get when one hyperparameter's column
is shuffled (``sklearn.inspection.permutation_importance``). The importance of a key
is that increase in squared error as a fraction of the metric's variance, so about the
share of the metric's variance the key explains (0: none); its spread is the std over
the resamples. Seeds are not a feature: replicates of one configuration are repeated
measurements of the same point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from srsweep.reports.levels import is_numeric
from srsweep.reports.levels import sort_key

__all__ = ["importance", "MIN_RUNS", "USED_STATES"]

MIN_RUNS = 8  # fewer runs than this leave too few out of each resample to score on
RESAMPLES = 5
TREES = 40  # a small forest: the ranking is stable and 1000 runs take about a second
LEAF = 3  # runs per leaf at least: smooths over seed noise and keeps the trees shallow
REPEATS = 3  # shuffles per key and resample
USED_STATES = ("finished", "stopped")  # a running run's value is partial


def encode(values: pd.Series) -> npt.NDArray[np.float64]:
    """A key's values as numbers for the forest: numbers as they are (missing ones at
    the median), anything else as its rank in ``levels.sort_key`` order."""
    if is_numeric(values):
        x = pd.to_numeric(values, errors="coerce")
        filled: npt.NDArray[np.float64] = x.fillna(x.median() if x.notna().any() else 0.0).to_numpy(
            dtype=float
        )
        return filled
    order = {v: i for i, v in enumerate(sorted(dict.fromkeys(values), key=sort_key))}
    return np.array([order[v] for v in values], dtype=float)


def importance(
    runs_df: pd.DataFrame, keys: Sequence[str], metric: str, *, seed: int = 0
) -> tuple[pd.DataFrame | None, str]:
    """The permutation importance of each key for ``metric`` (see the module doc).

    Args:
        runs_df: A frame from ``frames.runs_frame``.
        keys: The swept hyperparameters (seed keys left out).
        metric: Summary metric, without ``summary.``.
        seed: Seeds the resamples, forests and shuffles.

    Returns:
        ``(table, "")`` with one row per key, most important first: ``key``,
        ``importance``, ``std``, ``rank`` and ``runs`` (how many runs it is computed
        on), and a ``heldout_r2`` column (the forests' mean R² on the runs they did not
        see, the same in every row: how well the keys predict the metric at all); or
        ``(None, why)`` when it cannot be computed.
    """
    col = f"summary.{metric}"
    if not keys:
        return None, "no swept hyperparameter differs between the runs"
    if col not in runs_df:
        return None, f"no run has a summary value of {metric}"
    y_all = pd.to_numeric(runs_df[col], errors="coerce")
    used = runs_df["state"].isin(USED_STATES).to_numpy() & y_all.notna().to_numpy()
    n = int(used.sum())
    states = " or ".join(USED_STATES)
    if n < MIN_RUNS:
        return None, (
            f"{n} run(s) {states} with a value of {metric}; importance needs at least {MIN_RUNS}"
        )
    rows = runs_df[used]
    y = y_all[used].to_numpy(dtype=float)
    if np.ptp(y) == 0:
        return None, f"{metric} is the same in every run"
    kept = [k for k in keys if rows[k].nunique(dropna=False) > 1]
    if not kept:
        return None, f"no swept hyperparameter differs between the runs {states}"
    # scikit-learn (and the SciPy it loads) takes a second to import: only here, which
    # the report runs in a process of its own (analysis.analyse_frames)
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    x = np.column_stack([encode(rows[k]) for k in kept])
    rng = np.random.default_rng(seed)
    scores, r2 = [], []
    for r in range(RESAMPLES):
        drawn = rng.integers(0, n, n)
        out = np.setdiff1d(np.arange(n), drawn)
        if len(out) < 2:
            continue
        forest = RandomForestRegressor(
            n_estimators=TREES, min_samples_leaf=LEAF, random_state=seed + r, n_jobs=1
        )
        forest.fit(x[drawn], y[drawn])
        result = permutation_importance(
            forest,
            x[out],
            y[out],
            scoring="neg_mean_squared_error",
            n_repeats=REPEATS,
            random_state=seed + r,
        )
        scores.append(result.importances_mean / np.var(y))
        pred = forest.predict(x[out])
        r2.append(1.0 - np.mean((y[out] - pred) ** 2) / np.var(y))
    if not scores:
        return None, "no resample left any run out to score on"
    s = np.vstack(scores)
    table = pd.DataFrame({"key": kept, "importance": s.mean(axis=0), "std": s.std(axis=0)})
    table = table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table["runs"] = n
    table["heldout_r2"] = float(np.mean(r2))
    return table, ""
