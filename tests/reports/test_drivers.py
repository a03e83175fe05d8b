"""Which hyperparameter values drive each trend: Fisher's exact test, on a planted value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from srsweep.reports import NO_DATA
from srsweep.reports import levels_of
from srsweep.reports import trend_drivers
from srsweep.reports.levels import MISSING

FAST, FLAT = "learns fast, holds", "not learning"


def _configs() -> pd.DataFrame:
    """30 configurations: 12 of the 15 with loss=wgan do not learn, 1 of the 15 bce do;
    lr is drawn independently of the trend."""
    rng = np.random.default_rng(3)
    loss = ["wgan"] * 15 + ["bce"] * 15
    trend = [FLAT] * 12 + [FAST] * 3 + [FLAT] * 1 + [FAST] * 14
    return pd.DataFrame(
        {
            "config": range(1, 31),
            "trend": trend,
            "seeds": 3,
            "disc.loss": loss,
            "disc.lr": rng.choice([1e-5, 1e-4, 1e-3, 1e-2, 3e-2], 30),
        }
    )


def _drivers(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["disc.loss", "disc.lr"]
    table, why = trend_drivers(df, keys, {k: levels_of(df[k], k) for k in keys})
    assert why == "" and table is not None
    return table


def test_a_value_planted_in_one_trend_is_flagged_and_nothing_else():
    table = _drivers(_configs())
    assert (table["tests"] == len(table)).all() and len(table) == 2 * (2 + 5)
    flagged = table[table["flagged"]]
    assert sorted(zip(flagged["trend"], flagged["value"], flagged["direction"], strict=True)) == [
        (FAST, "bce", "over"),
        (FAST, "wgan", "under"),
        (FLAT, "bce", "under"),
        (FLAT, "wgan", "over"),
    ]
    assert set(flagged["key"]) == {"disc.loss"}
    row = table.set_index(["trend", "value"]).loc[(FLAT, "wgan")]
    assert (row["count"], row["trend_size"], row["value_size"]) == (12, 13, 15)
    assert row["share"] == pytest.approx(12 / 13) and row["overall"] == pytest.approx(0.5)
    p = fisher_exact([[12, 1], [3, 14]]).pvalue
    assert row["p"] == pytest.approx(p)
    assert row["p_bonferroni"] == pytest.approx(min(1.0, p * 14))


def test_levels_in_numeric_order_and_configurations_without_data_left_out():
    df = _configs()
    df.loc[0, "trend"] = NO_DATA
    table = _drivers(df)
    lrs = table[(table["trend"] == FLAT) & (table["key"] == "disc.lr")]["value"].tolist()
    assert lrs == ["1e-5", "1e-4", "1e-3", "1e-2", "3e-2"]  # not text order
    assert table.set_index(["trend", "value"]).loc[(FLAT, "wgan"), "count"] == 11


def test_what_cannot_be_tested_says_why():
    df = _configs()
    lv = {k: levels_of(df[k], k) for k in ("disc.loss", "disc.lr")}
    assert trend_drivers(df.head(1), ["disc.loss"], lv) == (
        None,
        "1 configuration(s) with a trend; drivers need at least 2",
    )
    assert trend_drivers(df.assign(trend=FAST), ["disc.loss"], lv) == (
        None,
        f"every configuration has the same trend ({FAST}); nothing to contrast",
    )
    same = df.assign(**{"disc.loss": "bce"})
    assert trend_drivers(same, ["disc.loss"], {"disc.loss": levels_of(same["disc.loss"])})[1] == (
        "no swept hyperparameter takes two values among the configurations"
    )


def test_a_continuous_key_is_cut_into_at_most_six_quantile_bins():
    values = pd.Series(10 ** np.linspace(-5, -2, 60), name="disc.lr")
    lv = levels_of(values)
    assert lv.binned and len(lv.order) == 6
    names = lv.of(values)
    assert names.value_counts().tolist() == [10] * 6  # quantiles: equal counts
    assert list(dict.fromkeys(names)) == list(lv.order)  # ascending values, ascending bins
    assert lv.order[0].startswith("[1e-5, ") and lv.order[-1].endswith(", 1e-2]")
    assert len(set(lv.colours.values())) == 6
    few = levels_of(pd.Series([3e-3, 1e-3, 1e-4, 1e-3, None]))
    assert not few.binned and few.order == ("1e-4", "1e-3", "3e-3", MISSING)


@pytest.mark.parametrize("missing", [np.nan, None, NO_DATA], ids=["nan", "none", "no-data"])
def test_configurations_without_a_trend_are_left_out(missing):
    df = _configs()
    with_missing = pd.concat(
        [df, df.head(2).assign(config=[31, 32], trend=missing)], ignore_index=True
    )
    got = _drivers(with_missing)
    assert got.equals(_drivers(df))  # no empty trend, no division by zero
