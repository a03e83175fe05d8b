"""Tidy DataFrames built from run records: the only place the report shapes data.

Everything here is pure (no files, no plotting) so it can be tested on tiny inputs.
``runs_frame`` gives one row per run, ``history_frame`` one row per log call, and
``smooth`` adds the trailing-window mean and spread the plots draw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord

__all__ = [
    "runs_frame",
    "history_frame",
    "columns_frame",
    "varying_keys",
    "smooth",
    "best_k",
    "run_labels",
    "exclude",
    "format_value",
    "config_columns",
    "thin",
    "curves",
    "step_stats",
    "factorize",
    "run_rows",
    "by_step",
    "plain_ids",
    "MAX_POINTS",
]

MAX_POINTS = 200  # steps per curve drawn and in history.csv: enough for a smoothed curve

# Columns runs_frame fills itself; a config key with one of these names is kept
# under "config.<key>" so that it cannot overwrite them.
_RESERVED = ("run_id", "name", "state", "sweep_id", "runtime", "error")
GOALS = ("maximize", "minimize")


def _hashable(value: Any) -> Any:
    """Lists become tuples (recursively) so config values can be grouped and counted."""
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = _hashable(v)
    return out


def _config_name(key: str) -> str:
    if key in _RESERVED or key.startswith("summary."):
        return f"config.{key}"
    return key


def _runtime(r: RunRecord) -> float:
    """Seconds the run trained: the runtime it reported in its summary (a trial's own
    time, which in a pack does not count the packs trained before it), else the ledger's
    ``finished_at - started_at``; NaN while it runs."""
    start, end = r.started_at, r.finished_at
    if end is None:
        return math.nan
    reported = (r.summary or {}).get("runtime")
    if isinstance(reported, (int, float)) and not isinstance(reported, bool):
        if math.isfinite(reported):
            return float(reported)
    return end - start if start is not None else math.nan


def _last_logged(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last non-missing value of each metric in a history."""
    last: dict[str, Any] = {}
    for entry in history:
        last.update((k, v) for k, v in entry.items() if k != "_step" and v is not None)
    return last


def runs_frame(
    records: Iterable[RunRecord], logged: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per run, with its config flattened to dotted column names.

    Columns: ``run_id``, ``name``, ``state``, ``sweep_id``, one column per config key
    (``disc.lr``; lists become tuples), ``summary.<key>`` per summary metric,
    ``runtime`` (``_runtime``) and ``error``. The
    swept ``params`` are laid over the config, so a running run whose full config is
    not recorded yet still shows the values it was given; likewise a metric missing
    from a run's summary takes its last logged value.

    Args:
        records: Run records, in the order the rows should have.

    Returns:
        The runs frame (RangeIndex).
    """
    rows = []
    for r in records:
        cfg = _flatten(r.config or {})
        cfg.update(_flatten(r.params or {}))
        row: dict[str, Any] = {"run_id": r.id, "name": r.name, "state": r.state}
        row["sweep_id"] = r.sweep_id
        row.update({_config_name(k): v for k, v in cfg.items()})
        summary = _flatten(r.summary or {})
        last = logged.get(r.id, {}) if logged is not None else _last_logged(r.history or [])
        for k, v in last.items():
            summary.setdefault(k, v)
        row.update({f"summary.{k}": v for k, v in summary.items()})
        row["runtime"] = _runtime(r)
        row["error"] = r.error
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(_RESERVED))
    # Summary, runtime and error last, whatever order the keys first appeared in.
    tail = [c for c in df.columns if c.startswith("summary.")] + ["runtime", "error"]
    return df[[c for c in df.columns if c not in tail] + tail]


def config_columns(runs_df: pd.DataFrame) -> list[str]:
    """The columns of ``runs_df`` that came from the runs' configs."""
    return [c for c in runs_df.columns if c not in _RESERVED and not c.startswith("summary.")]


def history_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per log call: ``run_id``, ``step`` (from ``_step``) and one column per
    metric (NaN where a call did not log it).

    Args:
        records: Run records with their ``history``.

    Returns:
        The history frame, rows in record order then logging order.
    """
    rows = []
    for r in records:
        for i, entry in enumerate(r.history or ()):
            metrics = {k: v for k, v in entry.items() if k != "_step"}
            # A log call without "_step" is placed by its position in the history.
            rows.append({"run_id": r.id, "step": entry.get("_step", i), **metrics})
    if not rows:
        return pd.DataFrame({"run_id": pd.Series(dtype=object), "step": pd.Series(dtype=int)})
    return pd.DataFrame(rows)


def columns_frame(
    columns: Mapping[str, Mapping[str, NDArray[Any]]], run_ids: Sequence[str]
) -> pd.DataFrame:
    """``history_frame`` from columns (``Backend.history_columns``), built array by array.

    Args:
        columns: Per run id, one array per key with ``_step`` among them.
        run_ids: The runs, in the order their rows should have.

    Returns:
        The frame ``history_frame`` gives for the runs' rows: ``run_id``, ``step``
        and one column per key in the order the keys first appear; values a run never
        logged are NaN. ``run_id`` is categorical (``plain_ids`` makes it objects).
    """
    keys: dict[str, None] = {}
    sizes = []
    for rid in run_ids:
        cols = columns.get(rid, {})
        keys.update(dict.fromkeys(k for k in cols if k != "_step"))
        sizes.append(len(cols["_step"]) if "_step" in cols else 0)
    # the ids as a categorical (a code per row; millions of rows of one string each cost
    # seconds to repeat, compare and take)
    codes = np.repeat(np.arange(len(run_ids), dtype=np.int32), sizes)
    data: dict[str, Any] = {
        "run_id": pd.Categorical.from_codes(codes, categories=pd.Index(run_ids, dtype=object)),
        "step": _joined([columns.get(r, {}).get("_step") for r in run_ids], sizes),
    }
    for key in keys:
        data[key] = _joined([columns.get(r, {}).get(key) for r in run_ids], sizes)
    if not len(data["run_id"]):
        return pd.DataFrame({"run_id": pd.Series(dtype=object), "step": pd.Series(dtype=int)})
    # the arrays are this frame's own (just joined): taken as they are, not stacked into
    # one block (a copy of every column, 0.7 s at 4M rows x 8 keys)
    return pd.DataFrame(data, copy=False)


def _joined(parts: Sequence[NDArray[Any] | None], sizes: Sequence[int]) -> NDArray[Any]:
    """One key's arrays end to end; a run without the key is NaN there, and the column
    then holds floats (numbers) or objects (anything else), as pandas fills a gap."""
    present = [p for p in parts if p is not None]
    if len(present) == len(parts) and len({p.dtype for p in present}) <= 1:
        return np.concatenate(present) if present else np.empty(0)
    numeric = all(p.dtype.kind in "iuf" for p in present)
    dtype: Any = float if numeric else object
    out = np.full(sum(sizes), np.nan, dtype=dtype)
    at = 0
    for p, n in zip(parts, sizes, strict=True):
        if p is not None:
            out[at : at + n] = p
        at += n
    return out


def factorize(ids: Any) -> tuple[NDArray[np.intp], NDArray[Any]]:
    """``pd.factorize(ids, sort=False)``: each row's run number (in order of first
    appearance) and the runs; found from where the id changes when every run's rows
    lie together, as frames built run by run do (four times faster than hashing
    millions of ids), else by ``pd.factorize``. A categorical column (``columns_frame``'s
    ``run_id``) is factorized by its codes."""
    if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(ids)
        if not (cat.codes < 0).any():
            codes, first = factorize(np.asarray(cat.codes))
            return codes, np.asarray(cat.categories, dtype=object)[first]
    values = np.asarray(ids)
    if values.ndim == 1 and len(values) and values.dtype.kind in "OUi":
        cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        first = values[starts]
        try:
            distinct = len(set(first.tolist())) == len(first)
        except TypeError:  # unhashable ids: let pandas say what it makes of them
            distinct = False
        if distinct and not pd.isna(first).any():
            sizes = np.diff(np.append(starts, len(values)))
            return np.repeat(np.arange(len(first), dtype=np.intp), sizes), first
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.intp, copy=False), np.asarray(uniques)


def run_rows(df: pd.DataFrame, id_col: str = "run_id") -> dict[Any, NDArray[np.intp]]:
    """The row positions of each run, in order of first appearance: what
    ``df.groupby(id_col, sort=False).indices`` gives, through ``factorize``."""
    codes, ids = factorize(df[id_col])
    if (codes[1:] >= codes[:-1]).all():  # run by run: each run's rows are a range
        bounds = np.searchsorted(codes, np.arange(len(ids) + 1))
        return {rid: np.arange(bounds[k], bounds[k + 1]) for k, rid in enumerate(ids)}
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
    return {rid: order[bounds[k] : bounds[k + 1]] for k, rid in enumerate(ids)}


def plain_ids(df: pd.DataFrame, id_col: str = "run_id") -> pd.DataFrame:
    """``df`` with a categorical ``id_col`` (``columns_frame``'s) as plain objects, as
    ``history_frame`` gives it: for the frames a report's tables and figures group."""
    if not isinstance(df[id_col].dtype, pd.CategoricalDtype):
        return df
    return df.assign(**{id_col: df[id_col].to_numpy(dtype=object)})


def by_step(rows: NDArray[np.intp], steps: NDArray[Any]) -> NDArray[np.intp]:
    """``rows`` in order of their ``steps`` (stable), as they are when already so."""
    at = steps[rows]
    if (at[1:] >= at[:-1]).all():
        return rows
    return rows[np.argsort(at, kind="stable")]


def varying_keys(runs_df: pd.DataFrame, candidates: Sequence[str] | None = None) -> list[str]:
    """Config columns whose values differ across runs: the hyperparameters that differ.

    Missing values (a key a run's config lacks) do not count as a value of their own,
    so running runs with a partial config do not make every key look swept.

    Args:
        runs_df: A frame from ``runs_frame``.
        candidates: Only consider these keys (e.g. the swept ones); default all config
            columns. Keys that are not columns are ignored.

    Returns:
        The varying keys, in column order.
    """
    cols = config_columns(runs_df)
    if candidates is not None:
        wanted = set(candidates) | {f"config.{c}" for c in candidates}
        cols = [c for c in cols if c in wanted]
    return [c for c in cols if runs_df[c].nunique(dropna=True) > 1]


def smooth(
    history_df: pd.DataFrame, metric: str, avg_hor: int, step_col: str = "step"
) -> pd.DataFrame:
    """Add ``<metric>_smooth`` and ``<metric>_std``: trailing mean and population std.

    The window of the row at step ``s`` is every logged value of the same run with a
    step in ``(s - avg_hor, s]``. It is measured in steps, not log calls, so values
    logged every 25 epochs with ``avg_hor=500`` average 20 points, as the study's
    per-epoch window of 500 did (symrep §10); it is shorter at the start of a run.

    Args:
        history_df: A frame from ``history_frame`` (``run_id``, ``step_col``, metrics).
        metric: The raw metric column to smooth.
        avg_hor: Window length in steps (> 0).
        step_col: The column holding the step.

    Returns:
        A copy of ``history_df`` with the two columns added (NaN where ``metric`` is).

    Raises:
        UsageError: ``metric`` is not a column or ``avg_hor`` is not positive.
    """
    if metric not in history_df.columns:
        known = ", ".join(c for c in history_df.columns if c not in ("run_id", step_col))
        raise UsageError(f"no metric {metric!r} in the runs' history; logged: {known or 'none'}")
    if avg_hor <= 0:
        raise UsageError(f"avg_hor must be a positive number of steps, but got {avg_hor}")
    values = pd.to_numeric(history_df[metric], errors="coerce").to_numpy(dtype=float)
    steps = history_df[step_col].to_numpy(dtype=float)
    mean = np.full(len(values), np.nan)
    std = np.full(len(values), np.nan)
    for rows in run_rows(history_df).values():
        rows = by_step(rows, steps)
        rows = rows[~np.isnan(values[rows])]
        if len(rows) == 0:
            continue
        s, raw = steps[rows], values[rows]
        # Cumulative sums give every window in O(n); centring first keeps the
        # E[x²] - E[x]² variance from cancelling badly for large values.
        centre = raw.mean()
        x = raw - centre
        c1 = np.concatenate(([0.0], np.cumsum(x)))
        c2 = np.concatenate(([0.0], np.cumsum(x * x)))
        left = np.searchsorted(s, s - avg_hor, side="right")
        right = np.arange(1, len(s) + 1)
        n = right - left
        m = (c1[right] - c1[left]) / n
        var = (c2[right] - c2[left]) / n - m * m
        mean[rows] = m + centre
        std[rows] = np.sqrt(np.clip(var, 0.0, None))
    # a shallow copy: the two new columns are its own, the others shared (millions of
    # rows; nothing writes into them)
    out = history_df.copy(deep=False)
    out[f"{metric}_smooth"] = mean
    out[f"{metric}_std"] = std
    return out


def thin(
    df: pd.DataFrame, max_points: int = MAX_POINTS, id_col: str = "run_id", step_col: str = "step"
) -> pd.DataFrame:
    """The rows of at most about ``max_points`` steps per curve, for drawing.

    Steps are kept on one grid for every curve (every k-th of the distinct steps, so
    curves logged at the same steps stay aligned and a mean over them is the mean at
    those steps) plus each curve's last step, so that where it ends is drawn.

    Args:
        df: One row per curve and step (e.g. from ``smooth``).
        max_points: About how many steps to keep per curve.
        id_col: The column naming the curve.
        step_col: The step column.

    Returns:
        The kept rows of ``df``, in its order.
    """
    steps = df[step_col].to_numpy()
    # whole steps from 0 within a few times the rows (as logged): marked in a table of
    # every step, which finds the distinct ones and the grid's rows without sorting
    table = None
    if steps.dtype.kind in "iu" and len(steps) and 0 <= steps.min():
        if steps.max() <= max(4 * len(steps), 1 << 20):
            table = np.zeros(int(steps.max()) + 1, dtype=bool)
            table[steps] = True
    if table is not None:
        distinct = np.flatnonzero(table)
    else:
        distinct = np.sort(pd.unique(steps))  # hashing first: millions of rows, few steps
    if len(distinct) <= max_points:
        return df
    grid = distinct[:: -(-len(distinct) // max_points)]
    codes, ids = factorize(df[id_col])
    # each curve's last step, in the steps' own type (a float copy of millions of steps
    # costs more than the rest of this)
    floor = np.iinfo(steps.dtype).min if steps.dtype.kind in "iu" else -np.inf
    last = np.full(len(ids), floor, dtype=steps.dtype if steps.dtype.kind in "iuf" else float)
    np.maximum.at(last, codes, steps)
    if table is not None:
        table[:] = False
        table[grid] = True
        on_grid = table[steps]
    else:
        on_grid = np.isin(steps, grid)
    return df[on_grid | (steps == last[codes])]


def curves(
    df: pd.DataFrame, y: str, more: Sequence[str] = (), id_col: str = "run_id", x_col: str = "step"
) -> dict[Any, tuple[NDArray[Any], ...]]:
    """Each curve of ``df`` as arrays, split in one pass instead of a group at a time.

    Args:
        df: One row per curve and step.
        y: The values drawn; rows where it is missing are left out.
        more: Further columns wanted beside it (e.g. the std), as floats.
        id_col: The column naming the curve.
        x_col: The step column.

    Returns:
        Per curve, in the order curves first appear (one whose ``y`` is all missing
        too, with empty arrays): ``(x, y, *more)`` sorted by ``x`` (stable), ``x`` in its
        own dtype and the rest as floats.
    """
    codes, ids = factorize(df[id_col])
    keep = df[y].notna().to_numpy()
    codes = codes[keep]
    x = df[x_col].to_numpy()[keep]
    order = np.lexsort((x, codes))
    cols = [x[order]] + [df[c].to_numpy(dtype=float)[keep][order] for c in (y, *more)]
    bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
    return {rid: tuple(c[bounds[k] : bounds[k + 1]] for c in cols) for k, rid in enumerate(ids)}


def step_stats(
    drawn: Sequence[tuple[NDArray[Any], ...]],
) -> tuple[NDArray[Any], NDArray[np.float64], NDArray[np.float64]]:
    """The steps of some curves (``(x, y, ...)``, as ``curves`` gives them; at least
    one), and the mean and population std of ``y`` at each step over the curves present
    there: a shorter (running) curve stops contributing where it ends."""
    steps, at = np.unique(np.concatenate([c[0] for c in drawn]), return_inverse=True)
    y = np.concatenate([c[1] for c in drawn]).astype(float)
    n = np.bincount(at)
    mean = np.bincount(at, y) / n
    sd = np.sqrt(np.bincount(at, (y - mean[at]) ** 2) / n)
    return steps, mean, sd


def best_k(runs_df: pd.DataFrame, metric: str, goal: str, k: int) -> pd.DataFrame:
    """The ``k`` best runs by a summary metric; runs without a value are left out.

    Args:
        runs_df: A frame from ``runs_frame``.
        metric: Summary metric, with or without the ``summary.`` prefix.
        goal: ``"maximize"`` or ``"minimize"``.
        k: How many rows at most.

    Returns:
        The best rows of ``runs_df``, best first (ties keep run order), index reset.

    Raises:
        UsageError: unknown goal, or no run has the metric in its summary.
    """
    if goal not in GOALS:
        raise UsageError(f"goal must be one of {', '.join(GOALS)}, but got {goal!r}")
    col = metric if metric.startswith("summary.") else f"summary.{metric}"
    if col not in runs_df.columns:
        known = [c.removeprefix("summary.") for c in runs_df if c.startswith("summary.")]
        raise UsageError(
            f"no run has {metric!r} in its summary; known: {', '.join(known) or 'none'}"
        )
    ranked = runs_df.assign(_v=pd.to_numeric(runs_df[col], errors="coerce")).dropna(subset="_v")
    ranked = ranked.sort_values("_v", ascending=goal == "minimize", kind="stable")
    return ranked.drop(columns="_v").head(k).reset_index(drop=True)


def format_value(value: Any) -> str:
    """Compact text for a hyperparameter value: ``1e-4``, ``6``, ``(2, 64)``, ``0.5``, ``1e5``."""
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return "n/a"
        if not math.isfinite(x):
            return str(x)
        if x.is_integer() and abs(x) < 1e5:
            return str(int(x))
        plain = f"{x:.4g}"
        mant, _, exp = f"{x:.3e}".partition("e")
        sci = f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
        # Ties go to the exponent form so 0.01 sits next to 1e-3 as 1e-2.
        return sci if len(sci) <= len(plain) else plain
    return str(value)


def run_labels(runs_df: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """Legend labels such as ``"disc.lr=1e-4, disc.hid_num=6"``, indexed by run id.

    With no keys the label is the run's name. Runs whose labels would coincide (same
    values, e.g. repeats) get their name appended so every label is unique.

    Args:
        runs_df: A frame from ``runs_frame``.
        keys: The columns to show, usually ``varying_keys(runs_df)``.

    Returns:
        A Series of str indexed by ``run_id``, named ``"label"``.
    """
    if keys:
        labels = [
            ", ".join(f"{k}={format_value(row[k])}" for k in keys)
            for _, row in runs_df[list(keys)].iterrows()
        ]
    else:
        labels = [str(n) for n in runs_df["name"]]
    series = pd.Series(labels, index=runs_df["run_id"].to_numpy(), name="label", dtype=object)
    dup = series.duplicated(keep=False).to_numpy()
    if keys and dup.any():
        names = runs_df["name"].astype(str).to_numpy()
        series[dup] = [f"{lab} [{n}]" for lab, n in zip(series[dup], names[dup], strict=True)]
    return series


def exclude(records: Iterable[RunRecord], patterns: Iterable[str]) -> list[RunRecord]:
    """Drop runs whose id or name contains any of ``patterns`` (the study's
    ``excl_names``); empty patterns are ignored."""
    pats = [p for p in patterns if p]
    return [r for r in records if not any(p in r.id or p in r.name for p in pats)]
