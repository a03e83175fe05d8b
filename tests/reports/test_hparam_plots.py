"""The figures of the metric against the hyperparameters, and what all figures share:
numeric legend order, one colour per value, bands clipped to the metric's range."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.collections import PathCollection
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex

from srsweep.reports import comparison_plot
from srsweep.reports import grouped_plot
from srsweep.reports import history_frame
from srsweep.reports import levels_of
from srsweep.reports import run_labels
from srsweep.reports import runs_frame
from srsweep.reports import smooth
from srsweep.reports.hparam_plots import importance_plot
from srsweep.reports.hparam_plots import metric_plot
from srsweep.reports.hparam_plots import parallel_plot


@pytest.fixture
def frames(records, avg_hor):
    # lr values 1e-3, 1e-4, 3e-3 sort as text in that order, and numerically otherwise
    for r, lr in zip(records, [1e-3, 1e-4, 3e-3, 1e-3, 1e-4, 3e-3, 1e-3], strict=True):
        r.params["disc"]["lr"] = r.config["disc"]["lr"] = lr
    runs = runs_frame(records)
    return runs, smooth(history_frame(records), "acc", avg_hor)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def _legend_texts(fig) -> list[str]:
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()]


def test_legends_in_numeric_order_with_one_colour_per_value(frames):
    runs, smoothed = frames
    lv = levels_of(runs["disc.lr"], "disc.lr")
    assert lv.order == ("1e-4", "1e-3", "3e-3")
    fig = grouped_plot(smoothed, runs, "disc.lr", "acc", band=False, levels=lv)
    assert _legend_texts(fig) == ["disc.lr=1e-4 (n=2)", "disc.lr=1e-3 (n=3)", "disc.lr=3e-3 (n=2)"]
    thick = [to_hex(line.get_color()) for line in fig.axes[0].lines if line.get_linewidth() > 2]
    assert thick == [lv.colours[v] for v in lv.order]
    strip = metric_plot(runs, "disc.lr", "avg_acc", lv)  # numeric: a scatter per value
    dots = [c for c in strip.axes[0].collections if isinstance(c, PathCollection)]
    assert [to_hex(c.get_facecolor()[0]) for c in dots] == thick  # the same colours


def test_metric_plot_log_axis_and_runs_without_a_value_left_out(frames):
    runs, _ = frames
    runs.loc[5, "summary.avg_acc"] = np.nan
    fig = metric_plot(runs, "disc.lr", "avg_acc", levels_of(runs["disc.lr"]), log=True, chance=0.5)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 6
    assert [t.get_text() for t in ax.texts] == ["chance (0.5)"]
    assert (
        metric_plot(runs, "disc.lr", "avg_acc", levels_of(runs["disc.lr"])).axes[0].get_xscale()
        == "linear"
    )
    assert _png(fig).startswith(b"\x89PNG")


def test_a_categorical_key_is_a_strip_and_box_per_value_in_order(frames):
    runs, _ = frames
    runs["disc.loss"] = ["wgan", "bce", "wgan", "bce", "wgan", "bce", "wgan"]
    runs["arch.hid_num"] = [(2, 10), (2, 4)] * 3 + [(2, 4)]
    fig = metric_plot(runs, "disc.loss", "avg_acc", levels_of(runs["disc.loss"]))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["bce", "wgan"]
    tuples = metric_plot(runs, "arch.hid_num", "avg_acc", levels_of(runs["arch.hid_num"]))
    assert [t.get_text() for t in tuples.axes[0].get_xticklabels()] == ["(2, 4)", "(2, 10)"]


def test_a_binned_key_has_a_legend_of_its_bins(make_run):
    runs = runs_frame(
        [make_run(f"r{i}", "slow", 10 ** (-5 + i / 6), 2, seed=i, epochs=100) for i in range(20)]
    )
    lv = levels_of(runs["disc.lr"])
    assert lv.binned
    fig = metric_plot(runs, "disc.lr", "avg_acc", lv, log=True)
    assert _legend_texts(fig) == [f"disc.lr={b}" for b in lv.order]


def test_parallel_coordinates_one_line_per_run_coloured_by_the_metric(frames):
    runs, _ = frames
    runs["disc.loss"] = ["wgan", "bce"] * 3 + ["bce"]
    keys = ["disc.lr", "disc.hid_num", "disc.loss"]
    fig = parallel_plot(
        runs, keys, "avg_acc", {k: levels_of(runs[k]) for k in keys}, {"disc.lr"}, "maximize"
    )
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == 7 and len(lines.get_segments()[0]) == 4  # 3 keys + metric
    values = lines.get_array()
    assert list(values) == sorted(values)  # the best drawn last, on top
    assert [t.get_text() for t in ax.get_xticklabels()] == [*keys, "avg_acc"]
    assert len(fig.axes) == 2  # and a colour bar
    assert _png(fig).startswith(b"\x89PNG")


def test_importance_bars_most_important_on_top():
    table = pd.DataFrame({"key": ["a", "b"], "importance": [0.6, 0.1], "std": [0.05, 0.02]})
    ax = importance_plot(table, "avg_acc").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a"]  # drawn bottom-up


def test_bands_are_clipped_to_the_metrics_range_and_chance_is_labelled(frames):
    runs, smoothed = frames
    wide = smoothed.assign(acc_std=0.8)  # a band that would reach far past [0, 1]
    labels = run_labels(runs, ["disc.lr"])
    fig = comparison_plot(wide, labels, "acc", band=True)  # an accuracy: clipped, chance 0.5
    ax = fig.axes[0]
    ys = np.concatenate(
        [p.get_paths()[0].vertices[:, 1] for p in ax.collections if isinstance(p, PolyCollection)]
    )
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    assert [t.get_text() for t in ax.texts] == ["chance (0.5)"]
    free = comparison_plot(wide, labels, "acc", band=True, value_range=None, chance=None)
    ys = np.concatenate([p.get_paths()[0].vertices[:, 1] for p in free.axes[0].collections])
    assert ys.min() < 0.0 and ys.max() > 1.0 and not free.axes[0].texts
    assert _legend_texts(fig) == list(labels)
