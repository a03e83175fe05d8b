"""The report's Markdown, rendered from the analyses of the synthetic runs (no figures drawn)."""

from __future__ import annotations

from typing import Any

import pytest

from srsweep.reports import analyse
from srsweep.reports import runs_frame
from srsweep.reports import varying_keys
from srsweep.reports.document import Files
from srsweep.reports.document import curves_section
from srsweep.reports.document import kernel_section
from srsweep.reports.document import report_blocks
from srsweep.reports.markdown import render_markdown

KEYS = ["disc.lr", "disc.hid_num"]


def _render(records: Any, files: Files | None = None, **kw: Any) -> str:
    args: dict[str, Any] = dict(metric="avg_acc", goal="maximize", curve="acc", title="SD", k=3)
    study = analyse(records, **(args | kw))
    return render_markdown(report_blocks(study, files or Files()))


def test_summary_lists_states_in_order_and_what_differs(records):
    assert varying_keys(runs_frame(records)) == KEYS  # the frames this module renders
    text = _render(records, excluded=["r9"])
    assert text.startswith("# SD\n\nGenerated ")
    assert "- Runs: 7 (1 running, 5 finished, 1 failed).\n" in text
    assert "- Configurations: 7 configurations, 1 seed each;" in text
    assert "- Excluded runs whose id or name contains: r9.\n" in text
    assert "- Hyperparameters that differ: disc.lr, disc.hid_num.\n" in text
    assert "avg_hor = 500 steps, with a band of ±1 std of the raw values in the window." in text
    assert "- Bands are clipped to [0, 1]: `acc` is taken for an accuracy" in text
    plain = _render(records, band=False)
    assert "avg_hor = 500 steps." in plain and "clipped" not in plain
    assert "Excluded" not in _render(records)


def test_every_file_described_is_linked(records):
    files = Files(tables=[("runs.csv", "runs"), ("trends.csv", "trends")], html="report.html")
    text = _render(records, files)
    assert "- [runs.csv](runs.csv): runs\n- [trends.csv](trends.csv): trends\n" in text
    assert "- [report.html](report.html): this report with interactive figures" in text


def test_figures_are_linked_and_the_highlight_named(records, make_run):
    files = Files(
        by_key={"disc.lr": "by_disc.lr.png"},
        metric_vs={"disc.lr": "m.png"},
        parallel="parallel.png",
    )
    text = _render(records, files)
    assert "![Smoothed acc of every run](comparison.png)" in text
    assert "## Smoothed acc by hyperparameter\n\n### disc.lr\n\n" in text
    assert "![Smoothed acc by disc.lr](by_disc.lr.png)" in text
    assert "## Final avg_acc against each hyperparameter\n" in text and "](m.png)" in text
    assert "## Parallel coordinates\n\n![" in text
    plain = _render(records)
    assert "by hyperparameter" not in plain and "coloured" not in plain
    many = [make_run(f"q{i}", "slow", 1e-4 * (i + 1), 2, seed=i, epochs=500) for i in range(13)]
    assert "The 8 best runs by avg_acc are coloured, the rest grey." in _render(many, avg_hor=100)


def test_best_run_at_the_top_with_its_config_and_no_command_without_a_kernel(records):
    records[4].model_path = "results/sw1/models/r4.joblib"
    records[4].config |= {"ext": ["grad"], "runtime": None}
    text = _render(records)
    assert text.index("## Best run") < text.index("## Smoothed acc, all runs")
    assert (
        "- **sd-r4** (`r4`, finished): avg_acc = 0.8973, its final value (its summary "
        "value at the end of the run, not the best in its history); higher is better.\n"
    ) in text
    assert "- Trend: learns fast, holds (its configuration ran with one seed).\n" in text
    assert "- Model file: `results/sw1/models/r4.joblib`\n" in text
    assert "No `srsweep run` command" in text
    assert "| disc.lr | 1e-4 |\n| disc.hid_num | 6 |\n" in text
    assert "| disc.betas | [0.9, 0.999] |" in text
    assert '| ext | ["grad"] |' in text and "| runtime | null |" in text  # as JSON


def test_best_table_marks_running_runs_and_formats_runtime(records):
    records[5].summary["avg_acc"] = 0.99  # the running run tops the table
    records[4].summary["runtime"], records[0].summary["runtime"] = 60.0, 9000.0  # 2.5 h
    text = _render(records)
    assert "## Best 3 by avg_acc (maximize)" in text
    assert "values are partial" in text
    assert "| # | run | state | avg_acc | disc.lr | disc.hid_num | runtime |" in text
    assert "| 1 | sd-r5 | **running** | 0.99 | 1e-5 | 6 |  |" in text  # no runtime yet
    assert "| 2 | sd-r4 | finished | 0.8973 | 1e-4 | 6 | 60 s |" in text
    assert "| 3 | sd-r0 | finished | 0.8924 | 1e-4 | 2 | 2.5 h |" in text
    assert "**sd-r4**" in text  # a running run is never the best run


def test_trend_table_gives_counts_modes_medians_and_members(records):
    text = _render(records)
    assert "Each run's smoothed `acc` is sorted by these rules" in text
    assert "never rises clearly above chance" in text
    assert "| trend | configurations | runs | disc.lr | disc.hid_num |" in text
    assert "| learns fast, holds | 2 | 2 | 1e-4 | 2 (median 4) |" in text
    assert "- *learns fast, holds*: sd-r0, sd-r4\n" in text
    assert "- *not learning*: sd-r3, sd-r6\n" in text


def test_a_minimised_curve_improves_rather_than_rises(records):
    text = _render(records, metric="avg_acc", goal="minimize", curve="loss")
    assert "never improves clearly on chance (or on its start)" in text
    assert "rises" not in text


def test_failed_and_stopped_runs_are_listed_apart(records):
    records[6].error = "ValueError: a | b\nTraceback (most recent call last): ..."
    records[3].state, records[3].error = "stopped", "early-terminated by hyperband"
    text = _render(records)
    assert text.endswith(
        "## Failed runs\n\n| run | state | error |\n|---|---|---|\n"
        "| sd-r6 | failed | ValueError: a \\| b |\n"
    )
    assert "## Stopped early\n" in text
    assert "| sd-r3 | 0.5113 | early-terminated by hyperband |" in text
    assert "Traceback" not in text
    assert "Failed runs" not in _render(records[:6])


def test_left_out_analyses_say_why(records):
    text = _render(records)
    assert (
        "## Which hyperparameters matter for avg_acc\n\nLeft out: 5 run(s) finished or "
        "stopped with a value of avg_acc; importance needs at least 8.\n"
    ) in text
    one = _render(records[:1])
    assert "## What drives each trend\n\nLeft out: 1 configuration(s) with a trend" in one


def test_kernel_section():
    assert kernel_section("stn", [], []) == []
    blocks = kernel_section("stn", [("stn_dist.png", "Distance per cycle.")], ["r1: no | file"])
    assert render_markdown(blocks) == (
        "## stn figures\n\n![stn_dist.png](stn_dist.png)\n\nDistance per cycle.\n\n"
        "Skipped:\n\n- r1: no \\| file\n"
    )


@pytest.mark.parametrize(
    ("curves", "expected"),
    [
        ([], "\n"),
        ([("acc", "curve_acc.png")], "## Smoothed acc\n\n![Smoothed acc](curve_acc.png)\n"),
    ],
    ids=["none", "one"],
)
def test_curves_section(curves, expected):
    assert render_markdown(curves_section(curves)) == expected


def test_each_trend_names_its_first_ten_configurations_and_counts_the_rest(crowded_records):
    # 48 configurations of one seed, a third of them per trend's shape
    study = analyse(crowded_records, metric="avg_acc", goal="maximize", curve="acc", k=3)
    text = render_markdown(report_blocks(study, Files()))
    assert (study.configs["trend"].value_counts() > 10).any()
    for trend, g in study.configs.groupby("trend", sort=False):
        line = next(x for x in text.splitlines() if x.startswith(f"- *{trend}*: "))
        first = study.trends.set_index("config").loc[g["config"].head(10), "name"]
        assert line.split(": ", 1)[1].split(", …")[0] == ", ".join(first)
        assert line.endswith(f", … ({len(g) - 10} more)") == (len(g) > 10)
