from __future__ import annotations

import io

import pytest
from matplotlib.collections import LineCollection
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from srsweep.reports import comparison_plot
from srsweep.reports import grouped_plot
from srsweep.reports import history_frame
from srsweep.reports import run_labels
from srsweep.reports import runs_frame
from srsweep.reports import save
from srsweep.reports import smooth

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def frames(records, avg_hor):
    runs = runs_frame(records)
    hist = history_frame(records)
    smoothed = smooth(smooth(hist, "acc", avg_hor), "loss", avg_hor)
    return runs, smoothed, run_labels(runs, ["disc.lr", "disc.hid_num"])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def _legend_texts(fig) -> list[str]:
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def test_comparison_plot_one_line_per_run_with_bands(frames):
    runs, smoothed, labels = frames
    fig = comparison_plot(smoothed, labels, "acc", band=True, title="t", xlabel="epoch")
    assert _png(fig).startswith(PNG)
    (ax,) = fig.axes
    # 7 runs plus the dashed chance line at 0.5 (an accuracy in [0, 1]).
    assert len(ax.lines) == 8
    assert list(ax.lines[-1].get_ydata()) == [0.5, 0.5]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 7
    assert _legend_texts(fig) == list(labels)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "smoothed acc", "t")


def test_comparison_plot_without_band_or_chance_line(frames):
    runs, smoothed, labels = frames
    fig = comparison_plot(smoothed, labels, "loss", band=False)
    (ax,) = fig.axes
    assert len(ax.lines) == 7  # "loss" is no accuracy: no chance line
    assert not ax.collections


def test_comparison_plot_highlights_a_few_runs(frames):
    runs, smoothed, labels = frames
    fig = comparison_plot(smoothed, labels, "acc", band=True, highlight=["r4", "r0"])
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # the two coloured runs and the chance line
    (greys,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(greys.get_segments()) == 5  # the other runs, in one grey collection
    assert to_hex(greys.get_colors()[0]) == to_hex("0.6")
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2  # coloured only
    assert _legend_texts(fig) == [labels["r4"], labels["r0"], "5 other runs"]


def test_grouped_plot_thin_runs_and_thick_group_means(frames):
    runs, smoothed, _ = frames
    fig = grouped_plot(smoothed, runs, "disc.lr", "acc", band=True)
    (ax,) = fig.axes
    # 4 group means (lr 1e-5, 1e-4, 1e-3, 1e-2) and the chance line as lines, and the
    # 7 thin run lines as one collection per group.
    assert len(ax.lines) == 4 + 1
    thin = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(c.get_segments()) for c in thin] == [2, 2, 1, 2]
    assert sum(line.get_linewidth() > 2 for line in ax.lines) == 4
    assert _legend_texts(fig) == [
        "disc.lr=1e-5 (n=2)",
        "disc.lr=1e-4 (n=2)",
        "disc.lr=1e-3 (n=1)",
        "disc.lr=1e-2 (n=2)",
    ]
    # a spread band for each group of two or more
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3
    assert ax.get_title() == "smoothed acc by disc.lr"
    assert _png(fig).startswith(PNG)


def test_grouped_plot_mean_is_the_average_of_the_group(frames):
    runs, smoothed, _ = frames
    fig = grouped_plot(smoothed, runs, "disc.hid_num", "acc", band=False)
    thick = [line for line in fig.axes[0].lines if line.get_linewidth() > 2]
    members = smoothed[smoothed["run_id"].isin(["r0", "r3"])]  # hid_num 2
    expected = members.groupby("step")["acc_smooth"].mean()
    assert list(thick[0].get_ydata()) == pytest.approx(list(expected))


def test_grouped_plot_with_tuple_values(frames):
    runs, smoothed, _ = frames
    runs = runs.copy()
    runs["arch.hid_num"] = [(2, 0), (2, 4)] * 3 + [(2, 0)]
    fig = grouped_plot(smoothed, runs, "arch.hid_num", "acc", band=False)
    assert _legend_texts(fig) == ["arch.hid_num=(2, 0) (n=4)", "arch.hid_num=(2, 4) (n=3)"]


def test_save_writes_png_atomically(tmp_path):
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    path = save(fig, tmp_path / "c.png")
    assert path == tmp_path / "c.png"
    assert path.read_bytes().startswith(PNG)
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # no temp file left
