"""Which hyperparameter values drive each trend: Fisher's exact test per value.

For each trend and each level of each swept key (its value, or its quantile bin), the
configurations are split two ways, in the trend or not and at that level or not, and
``scipy.stats.fisher_exact`` tests whether the level is over- or under-represented in
the trend. The unit is the configuration (its trend over seeds), not the run: seeds
of one configuration are replicates, not independent draws of its hyperparameters.
Many tables are tested at once, so each p-value is also given Bonferroni-corrected
(times the number of tests, at most 1), and only those below ``ALPHA`` are flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import pandas as pd

from srsweep.reports.levels import Levels
from srsweep.reports.trends import NO_DATA

__all__ = ["trend_drivers", "driver_cells", "tested", "Cells", "ALPHA", "COLUMNS"]

ALPHA = 0.05
COLUMNS = [
    "trend",
    "key",
    "value",
    "count",
    "trend_size",
    "share",
    "overall",
    "value_size",
    "p",
    "tests",
    "p_bonferroni",
    "direction",
    "flagged",
]


Cells = tuple[int, list[tuple[str, str, str, int, int, int]]]
"""What the tests need: the number of configurations tested and per (trend, key, level)
the configurations of the trend at the level, the trend's size and the level's."""


def trend_drivers(
    configs_df: pd.DataFrame, keys: Sequence[str], levels: Mapping[str, Levels]
) -> tuple[pd.DataFrame | None, str]:
    """Over- and under-represented hyperparameter values per trend.

    Args:
        configs_df: A frame from ``seeds.configs_frame`` (``trend`` per configuration).
        keys: The swept hyperparameters to test.
        levels: ``levels.levels_of`` per key, from the runs.

    Returns:
        ``(table, "")`` with one row per (trend, key, value) tested, in trend then key
        then level order: ``count`` (configurations of the trend at the value),
        ``trend_size``, ``share`` (count / trend_size), ``overall`` (share of all
        configurations at the value), ``value_size``, ``p`` (two-sided), ``tests``
        (how many were made), ``p_bonferroni``, ``direction`` ("over" or "under") and
        ``flagged`` (``p_bonferroni < ALPHA``); or ``(None, why)`` when nothing can be
        tested. Configurations whose trend is missing or ``NO_DATA`` are left out.
    """
    cells, why = driver_cells(configs_df, keys, levels)
    return (None, why) if cells is None else (tested(cells), "")


def driver_cells(
    configs_df: pd.DataFrame, keys: Sequence[str], levels: Mapping[str, Levels]
) -> tuple[Cells | None, str]:
    """The counts ``trend_drivers`` tests (its args), or ``(None, why)``; no SciPy."""
    # a configuration without a trend (missing, or no data) is not tested: counted in a
    # trend of its own it made an empty one, and its share a division by zero
    trend = configs_df["trend"]
    df = configs_df[trend.notna().to_numpy() & (trend != NO_DATA).to_numpy()]
    if len(df) < 2:
        return None, f"{len(df)} configuration(s) with a trend; drivers need at least 2"
    trends = list(dict.fromkeys(df["trend"]))
    if len(trends) < 2:
        return None, f"every configuration has the same trend ({trends[0]}); nothing to contrast"
    in_trend = {t: (df["trend"] == t).to_numpy() for t in trends}
    cells = []
    for key in keys:
        names = levels[key].of(df[key]).to_numpy()
        present = [lv for lv in levels[key].order if (names == lv).any()]
        if len(present) < 2:
            continue
        for t in trends:
            size = int(in_trend[t].sum())
            for lv in present:
                at = names == lv
                a = int((at & in_trend[t]).sum())
                cells.append((t, key, lv, a, size, int(at.sum())))
    if not cells:
        return None, "no swept hyperparameter takes two values among the configurations"
    return (len(df), cells), ""


def tested(cells: Cells) -> pd.DataFrame:
    """``trend_drivers``' table from ``driver_cells``' counts: Fisher's exact test of
    each (SciPy takes 0.7 s to import: the report imports it in a child process of its
    own while it reads, ``analysis.analyse_frames``)."""
    from scipy.stats import fisher_exact

    n, counts = cells
    rows = []
    for t, key, lv, a, size, at_n in counts:
        table = [[a, size - a], [at_n - a, n - size - at_n + a]]
        share, overall = a / size, at_n / n
        rows.append(
            {
                "trend": t,
                "key": key,
                "value": lv,
                "count": a,
                "trend_size": size,
                "share": share,
                "overall": overall,
                "value_size": at_n,
                "p": float(fisher_exact(table, alternative="two-sided").pvalue),
                "direction": "over" if share > overall else "under" if share < overall else "",
            }
        )
    out = pd.DataFrame(rows)
    out["tests"] = len(out)
    out["p_bonferroni"] = np.minimum(1.0, out["p"] * len(out))
    out["flagged"] = out["p_bonferroni"] < ALPHA
    return out[COLUMNS]
