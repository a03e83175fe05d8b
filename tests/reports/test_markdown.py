"""The report's Markdown, rendered from frames of the synthetic runs (no figures drawn)."""

from __future__ import annotations

from typing import Any

import pytest

from srsweep.reports import best_k
from srsweep.reports import characterise
from srsweep.reports import classify
from srsweep.reports import history_frame
from srsweep.reports import runs_frame
from srsweep.reports import smooth
from srsweep.reports import varying_keys
from srsweep.reports.markdown import curves_section
from srsweep.reports.markdown import kernel_section
from srsweep.reports.markdown import report_markdown

KEYS = ["disc.lr", "disc.hid_num"]


def _render(records: Any, avg_hor: int, **kw: Any) -> str:
    runs = runs_frame(records)
    smoothed = smooth(history_frame(records), "acc", avg_hor)
    trends = classify(smoothed, "acc_smooth", warmup=avg_hor)
    table = trends.merge(runs[["run_id", "name", "state", *KEYS]], on="run_id")
    args: dict[str, Any] = dict(
        title="SD", runs=runs, best=best_k(runs, "avg_acc", "maximize", 3), trends=table,
        summary=characterise(runs, trends, KEYS), keys=KEYS, metric="avg_acc",
        goal="maximize", curve="acc", avg_hor=avg_hor, band=True, excluded=[],
        highlight=None, figures={},
    )  # fmt: skip
    return report_markdown(**(args | kw))


def test_summary_lists_states_in_order_and_what_differs(records, avg_hor):
    assert varying_keys(runs_frame(records)) == KEYS  # the frames this module renders
    text = _render(records, avg_hor, excluded=["r9"])
    assert text.startswith("# SD\n\nGenerated ")
    assert "- Runs: 7 (1 running, 5 finished, 1 failed).\n" in text
    assert "- Excluded runs whose id or name contains: r9.\n" in text
    assert "- Hyperparameters that differ: disc.lr, disc.hid_num.\n" in text
    assert "avg_hor = 500 steps, with a band of ±1 std of the raw values in the window." in text
    assert "avg_hor = 500 steps." in _render(records, avg_hor, band=False)
    assert "Excluded" not in _render(records, avg_hor)


def test_figures_are_linked_and_the_highlight_named(records, avg_hor):
    text = _render(records, avg_hor, figures={"disc.lr": "by_disc.lr.png"}, highlight=["r4"])
    assert "![Smoothed acc of every run](comparison.png)" in text
    assert "## Smoothed acc by hyperparameter\n\n### disc.lr\n\n" in text
    assert "![Smoothed acc by disc.lr](by_disc.lr.png)" in text
    assert "The 1 best runs by avg_acc are coloured, the rest grey." in text
    plain = _render(records, avg_hor)
    assert "by hyperparameter" not in plain and "coloured" not in plain


def test_best_table_marks_running_runs_and_formats_runtime(records, avg_hor):
    records[5].summary["avg_acc"] = 0.99  # the running run tops the table
    records[4].finished_at, records[0].finished_at = 160.0, 9100.0  # 60 s and 2.5 h
    text = _render(records, avg_hor)
    assert "## Best 3 by avg_acc (maximize)" in text
    assert "values are partial" in text
    assert "| # | run | state | avg_acc | disc.lr | disc.hid_num | runtime |" in text
    assert "| 1 | sd-r5 | **running** | 0.99 | 1e-5 | 6 |  |" in text  # no runtime yet
    assert "| 2 | sd-r4 | finished | 0.8973 | 1e-4 | 6 | 60 s |" in text
    assert "| 3 | sd-r0 | finished | 0.8924 | 1e-4 | 2 | 2.5 h |" in text


def test_trend_table_gives_modes_medians_and_members(records, avg_hor):
    text = _render(records, avg_hor)
    assert "Each run's smoothed `acc` is sorted by these rules" in text
    assert "| trend | runs | disc.lr | disc.hid_num |" in text
    assert "| learns fast, holds | 2 | 1e-4 | 2 (median 4) |" in text
    assert "- *learns fast, holds*: sd-r0, sd-r4\n" in text
    assert "- *not learning*: sd-r3, sd-r6\n" in text


def test_failed_runs_show_the_first_line_of_their_error_escaped(records, avg_hor):
    records[6].error = "ValueError: a | b\nTraceback (most recent call last): ..."
    text = _render(records, avg_hor)
    assert text.endswith("## Failed runs\n\n| run | state | error |\n|---|---|---|\n"
                         "| sd-r6 | failed | ValueError: a \\| b |\n")  # fmt: skip
    assert "Traceback" not in text
    assert "Failed runs" not in _render(records[:6], avg_hor)


def test_kernel_section():
    assert kernel_section("stn", [], []) == ""
    text = kernel_section("stn", [("stn_dist.png", "Distance per cycle.")], ["r1: no | file"])
    assert text == (
        "\n## stn figures\n\n![stn_dist.png](stn_dist.png)\n\nDistance per cycle.\n\n"
        "Skipped:\n\n- r1: no \\| file\n"
    )


@pytest.mark.parametrize(
    ("curves", "expected"),
    [
        ([], ""),
        ([("acc", "curve_acc.png")], "\n## Smoothed acc\n\n![Smoothed acc](curve_acc.png)\n"),
    ],
    ids=["none", "one"],
)
def test_curves_section(curves, expected):
    assert curves_section(curves) == expected
