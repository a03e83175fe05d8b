"""Seed replicates: runs whose configs differ only in ``seed`` are one configuration.

A configuration's curve is the mean over its seeds' smoothed curves with a band over
the seeds, and its trend is the one most of its seeds show, with the agreement named
("4/5 seeds: learns fast, holds"), or ``SEED_DEPENDENT`` when no trend has a majority.
Everything here is pure and vectorised over pandas frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from srsweep.reports.frames import config_columns
from srsweep.reports.trends import NO_DATA
from srsweep.reports.trends import SEED_DEPENDENT

__all__ = [
    "SEED_DEPENDENT",
    "seed_keys",
    "config_ids",
    "seed_curves",
    "config_trends",
    "configs_frame",
]


def seed_keys(runs_df: pd.DataFrame) -> list[str]:
    """Config columns that seed a run: ``seed`` and any ``<section>.seed``."""
    return [
        c for c in config_columns(runs_df) if c.removeprefix("config.").split(".")[-1] == "seed"
    ]


def config_ids(runs_df: pd.DataFrame) -> pd.Series:
    """Configuration number (1, 2, ...) per run, in order of first appearance.

    Runs get the same number exactly when every config column but the seed keys holds
    the same value in both; a key one run lacks (NaN) is a value of its own, so a run
    whose full config is not recorded yet stays apart until it is.

    Args:
        runs_df: A frame from ``frames.runs_frame``.

    Returns:
        int Series indexed by ``run_id``, named ``"config"``.
    """
    seeds = set(seed_keys(runs_df))
    cols = [c for c in config_columns(runs_df) if c not in seeds]
    index = runs_df["run_id"].to_numpy()
    if not cols or runs_df.empty:
        return pd.Series(np.arange(1, len(runs_df) + 1), index=index, name="config")
    ids = runs_df.groupby(cols, dropna=False, sort=False).ngroup().to_numpy() + 1
    return pd.Series(ids, index=index, name="config")


def seed_curves(smoothed_df: pd.DataFrame, config: pd.Series, col: str) -> pd.DataFrame:
    """Per configuration and step: the mean, population std and count over its seeds.

    Args:
        smoothed_df: A frame from ``frames.smooth`` (``run_id``, ``step``, ``col``).
        config: ``config_ids`` of the runs.
        col: The smoothed column, e.g. ``"acc_smooth"``.

    Returns:
        Columns ``config``, ``step``, ``mean``, ``std`` and ``seeds`` (how many runs
        have a value at that step: a running seed stops counting where it ends).
    """
    data = smoothed_df[["run_id", "step", col]].dropna(subset=[col])
    data = data.assign(config=data["run_id"].map(config))
    grouped = data.groupby(["config", "step"], sort=True)[col]
    out = pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=0), "seeds": grouped.count()}
    )
    return out.reset_index()


def config_trends(trends_df: pd.DataFrame, config: pd.Series) -> pd.DataFrame:
    """Each configuration's trend from its seeds' trends.

    The trend most seeds show is the configuration's when more than half of the seeds
    with data show it, else ``SEED_DEPENDENT``; seeds with no data yet do not vote (a
    configuration none of whose seeds has data is ``NO_DATA``).

    Args:
        trends_df: ``trends.classify`` per run (``run_id``, ``trend``).
        config: ``config_ids`` of the runs.

    Returns:
        One row per configuration, in number order: ``config``, ``trend``, ``agree``
        (seeds showing the most common trend), ``voters`` (seeds with data), ``label``
        (``"4/5 seeds: learns fast, holds"``; the bare trend for a single seed).
    """
    t = trends_df[["run_id", "trend"]].assign(config=trends_df["run_id"].map(config))
    configs = np.sort(t["config"].unique())
    voting = t[t["trend"] != NO_DATA]
    counts = voting.groupby(["config", "trend"], sort=False).size().rename("n").reset_index()
    # The most common trend per configuration; ties keep the trend seen first.
    counts = counts.sort_values(["config", "n"], ascending=[True, False], kind="stable")
    top = counts.drop_duplicates("config").set_index("config")
    voters = voting.groupby("config").size()
    out = pd.DataFrame({"config": configs})
    out["agree"] = out["config"].map(top["n"]).fillna(0).astype(int)
    out["voters"] = out["config"].map(voters).fillna(0).astype(int)
    majority = 2 * out["agree"] > out["voters"]
    trend = out["config"].map(top["trend"]).where(majority, SEED_DEPENDENT)
    out["trend"] = trend.where(out["voters"] > 0, NO_DATA)
    label = [
        tr if v <= 1 else f"{a}/{v} seeds: {tr}" if tr != SEED_DEPENDENT else f"{tr} ({v} seeds)"
        for tr, a, v in zip(out["trend"], out["agree"], out["voters"], strict=True)
    ]
    out["label"] = label
    return out[["config", "trend", "agree", "voters", "label"]]


def configs_frame(
    runs_df: pd.DataFrame,
    config: pd.Series,
    keys: Sequence[str],
    metric: str,
    trends: pd.DataFrame,
) -> pd.DataFrame:
    """One row per configuration: its hyperparameters, seeds and metric over seeds.

    Args:
        runs_df: A frame from ``frames.runs_frame``.
        config: ``config_ids`` of the runs.
        keys: Hyperparameter columns to show (the swept ones, seed keys left out).
        metric: Summary metric (without ``summary.``) to average over seeds.
        trends: ``config_trends`` of the configurations.

    Returns:
        Columns ``config``, ``keys``..., ``seeds`` (runs), ``seed values`` (list),
        ``run_ids`` (list), ``<metric> mean``, ``<metric> std`` (population, over
        the seeds that have it), ``<metric> n`` and the trend columns ``trend``,
        ``agree``, ``voters``, ``label``.
    """
    seed_cols = seed_keys(runs_df)
    df = runs_df.assign(config=runs_df["run_id"].map(config).to_numpy())
    col = f"summary.{metric}"
    values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, df.index)
    df = df.assign(_v=values)
    g = df.groupby("config", sort=True)
    out = g[list(keys)].first() if keys else pd.DataFrame(index=g.size().index)
    out["seeds"] = g.size()
    seed_col = seed_cols[0] if seed_cols else None
    out["seed values"] = g[seed_col].agg(list) if seed_col else [[] for _ in range(len(out))]
    out["run_ids"] = g["run_id"].agg(list)
    out[f"{metric} mean"] = g["_v"].mean()
    out[f"{metric} std"] = g["_v"].std(ddof=0)
    out[f"{metric} n"] = g["_v"].count()
    out = out.reset_index()
    return out.merge(trends, on="config", how="left")
