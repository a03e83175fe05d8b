from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from srsweep.errors import UsageError
from srsweep.reports import analyse
from srsweep.reports import pipeline
from srsweep.reports import report_sweep
from srsweep.reports import write_report
from srsweep.reports.forked import can_fork
from srsweep.reports.pipeline import csv_parts
from srsweep.reports.pipeline import csv_text

FILES = [
    "runs.csv",
    "configs.csv",
    "history.csv",
    "best.csv",
    "trends.csv",
    "trend_drivers.csv",
    "comparison.png",
    "metric_vs_disc.lr.png",
    "metric_vs_disc.hid_num.png",
    "parallel.png",
    "by_disc.lr.png",
    "by_disc.hid_num.png",
    "report.html",
    "report.md",
]
TABLES = ["runs.csv", "configs.csv", "history.csv", "best.csv", "trends.csv"]


@pytest.fixture(scope="module")
def report(shared_records, tmp_path_factory):
    # One full report shared by the read-only tests below: rendering PNGs is the slow part.
    out = tmp_path_factory.mktemp("rep")
    paths = write_report(
        shared_records, out, metric="avg_acc", goal="maximize", curve="acc", title="SD", k=3
    )
    return out, paths


def test_writes_the_expected_files_in_order(report):
    out, paths = report
    assert paths == [out / name for name in FILES]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # and no temp files
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes().startswith(b"\x89PNG")


def test_tables(report, intended):
    out, _ = report
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 7 and {"disc.lr", "summary.avg_acc", "runtime"} <= set(runs.columns)
    best = pd.read_csv(out / "best.csv")
    assert list(best["run_id"]) == ["r4", "r0", "r2"]
    trends = pd.read_csv(out / "trends.csv")
    assert dict(zip(trends["run_id"], trends["trend"], strict=True)) == intended
    assert {"name", "state", "disc.lr", "disc.hid_num"} <= set(trends.columns)
    history = pd.read_csv(out / "history.csv")
    assert {"run_id", "step", "acc", "acc_smooth", "acc_std"} <= set(history.columns)


def test_markdown_report(report):
    out, paths = report
    text = (out / "report.md").read_text()
    assert text.startswith("# SD\n")
    for p in paths:
        if p.suffix == ".png":
            assert f"]({p.name})" in text
    assert "7 (1 running, 5 finished, 1 failed)" in text
    assert "avg_hor = 500" in text  # the most common avg_hor in the configs
    assert "| 1 | sd-r4 | finished | 0.8973 | 1e-4 | 6 | 5 min |" in text
    assert "| learns fast, holds | 2 | 2 | 1e-4 | 2 (median 4) |" in text
    for p in paths:
        if p.suffix == ".csv":
            assert f"- [{p.name}]({p.name}): " in text
    assert "| sd-r6 | failed | KernelFailed: NaN loss at epoch 1000 |" in text
    assert "Traceback" not in text  # only the error's first line


def test_running_runs_are_marked(records, tmp_path):
    records[5].summary["avg_acc"] = 0.99  # the running run tops the table
    records[5].params["disc"]["lr"] = 1e-4  # nothing varies: one figure, a quicker test
    write_report(records[4:6], tmp_path, metric="avg_acc", goal="maximize", curve="acc")
    text = (tmp_path / "report.md").read_text()
    assert "| 1 | sd-r5 | **running** |" in text
    assert "values are partial" in text


def test_one_run_without_avg_hor_uses_50_and_has_no_grouped_plots(records, tmp_path):
    run = records[0]
    del run.config["avg_hor"]
    paths = write_report([run], tmp_path, metric="acc", goal="maximize", curve="acc", band=False)
    assert [p.name for p in paths] == [*TABLES, "comparison.png", "report.html", "report.md"]
    assert "avg_hor = 50 steps." in (tmp_path / "report.md").read_text()


def test_many_runs_colour_only_the_best(make_run, tmp_path):
    runs = [make_run(f"q{i}", "slow", 1e-4 * (i + 1), 2, seed=i, epochs=500) for i in range(13)]
    write_report(runs, tmp_path, metric="avg_acc", goal="maximize", curve="acc", avg_hor=100)
    text = (tmp_path / "report.md").read_text()
    assert "The 8 best runs by avg_acc are coloured, the rest grey." in text
    assert "avg_hor = 100" in text


def test_exclude(records, tmp_path):
    paths = write_report(
        records[:2], tmp_path, metric="avg_acc", goal="maximize", curve="acc", exclude=["r1"]
    )
    assert list(pd.read_csv(tmp_path / "runs.csv")["run_id"]) == ["r0"]
    assert "comparison.png" in [p.name for p in paths]
    assert "- Excluded runs whose id or name contains: r1." in (tmp_path / "report.md").read_text()


def test_missing_curve_is_a_usage_error(records, tmp_path):
    with pytest.raises(
        UsageError,
        match=r"no run \(of 7 after exclusions\) has any history of "
        r"'val_loss'; logged metrics: acc, epoch, loss",
    ):
        write_report(records, tmp_path, metric="avg_acc", goal="maximize", curve="val_loss")
    with pytest.raises(UsageError, match="of 0 after exclusions"):
        write_report(
            records, tmp_path, metric="avg_acc", goal="maximize", curve="acc", exclude=["sd-"]
        )
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.fixture
def two_runs(records):
    """r4 and r5 (running) with the same hyperparameters, so only comparison.png is
    drawn, each with a summary ``loss``."""
    runs = records[4:6]
    runs[1].params["disc"]["lr"] = runs[0].params["disc"]["lr"]
    for r in runs:
        r.summary["loss"] = r.history[-1]["loss"]
    return runs


def test_report_sweep_of_a_kernel_plots_its_curve_and_adds_its_section(two_runs, tmp_path):
    paths = report_sweep({"program": "lazy"}, two_runs, tmp_path, sweep_id="sw1", title="L")
    # the two runs share a configuration: its curve over them is in curves.csv
    assert [p.name for p in paths] == [
        *TABLES,
        "curves.csv",
        "comparison.png",
        "report.html",
        "report.md",
    ]
    text = (tmp_path / "report.md").read_text()
    assert "## Smoothed loss, all runs" in text  # lazy's curve, metric and goal
    assert "## Best 2 by loss (minimize)" in text
    assert text.endswith(
        "## lazy figures\n\nSkipped:\n\n"
        "- lazy plots: no run logged rel_move_last, rel_move_all; none drawn\n"
    )


def test_report_sweep_of_a_kernel_takes_the_specs_metric_and_a_given_curve(two_runs, tmp_path):
    spec = {"program": "sd", "metric": {"name": "loss", "goal": "minimize"}}
    report_sweep(spec, two_runs, tmp_path, sweep_id="sw1", title="S", curve="loss")
    text = (tmp_path / "report.md").read_text()
    assert "## Smoothed loss, all runs" in text and "## Best 2 by loss (minimize)" in text
    report_sweep({"program": "sd"}, two_runs, tmp_path, sweep_id="sw1", title="S")
    text = (tmp_path / "report.md").read_text()
    assert "## Smoothed acc, all runs" in text and "## Best 2 by avg_acc (maximize)" in text


def test_report_sweep_of_a_script_plots_its_metric_and_every_other(two_runs, tmp_path):
    spec = {"program": "train.py", "metric": {"name": "acc", "goal": "maximize"}}
    paths = report_sweep(spec, two_runs, tmp_path, sweep_id="sw1", title="T")
    assert [p.name for p in paths[-4:]] == [
        "comparison.png",
        "curve_loss.png",
        "report.html",
        "report.md",
    ]
    text = (tmp_path / "report.md").read_text()
    assert "## Smoothed acc, all runs" in text and "## Best 2 by acc (maximize)" in text
    assert text.endswith("\n## Smoothed loss\n\n![Smoothed loss](curve_loss.png)\n")


def test_report_sweep_of_a_script_without_a_metric_ranks_by_the_curve(two_runs, tmp_path):
    report_sweep(
        {"program": "train.py"}, two_runs, tmp_path, sweep_id="sw1", title="T", curve="loss"
    )
    text = (tmp_path / "report.md").read_text()
    assert "## Best 2 by loss (minimize)" in text  # W&B's default goal
    assert "![Smoothed acc](curve_acc.png)" in text


def test_report_sweep_of_a_script_without_a_metric_or_curve_names_the_logged(records, tmp_path):
    out = tmp_path / "rep"
    with pytest.raises(UsageError) as e:
        report_sweep({"program": "train.py"}, records, out, sweep_id="sw1", title="T")
    assert str(e.value) == (
        "report: sweep sw1 runs a script and its spec names no metric; "
        "pass --metric or --curve (logged: acc, epoch, loss)"
    )
    assert not out.exists()


def test_report_sweep_takes_the_specs_metric_with_a_given_goal(records, tmp_path):
    report_sweep({"program": "sd"}, records, tmp_path, sweep_id="sw1", title="S", goal="minimize")
    best = pd.read_csv(tmp_path / "best.csv")
    assert best["summary.avg_acc"].is_monotonic_increasing and len(best) == 7
    assert best["run_id"][0] in ("r3", "r6")  # the flat ones come first now
    text = (tmp_path / "report.md").read_text()
    assert "## Best 7 by avg_acc (minimize)" in text and "## Smoothed acc, all runs" in text


def test_an_unknown_metric_is_refused_naming_what_was_logged(records, tmp_path):
    out = tmp_path / "rep"
    with pytest.raises(UsageError) as e:
        report_sweep({"program": "sd"}, records, out, sweep_id="sw1", title="S", metric="avg_accu")
    assert str(e.value) == (
        "report: no run of sweep sw1 logged 'avg_accu'; logged: acc, avg_acc, epoch, loss, "
        "runtime (did you mean 'avg_acc'?)"
    )
    with pytest.raises(UsageError) as e:
        report_sweep({"program": "sd"}, records, out, sweep_id="sw1", title="S", metric="runtime")
    assert str(e.value) == (
        "report: 'runtime' is only a final value of sweep sw1's runs, not logged over steps; "
        "pass --curve METRIC to name the curve to classify"
    )
    assert not out.exists()
    report_sweep(
        {"program": "sd"}, records, out, sweep_id="sw1", title="S", metric="runtime", curve="acc"
    )
    assert "## Best 7 by runtime (minimize)" in (out / "report.md").read_text()  # not sd's goal


def test_a_script_whose_spec_names_an_unlogged_metric_asks_for_one(records, tmp_path):
    spec = {"program": "train.py", "metric": {"name": "avg_accuracy", "goal": "maximize"}}
    with pytest.raises(UsageError) as e:
        report_sweep(spec, records, tmp_path, sweep_id="sw1", title="T")
    assert str(e.value) == (
        "report: no run of sweep sw1 logged 'avg_accuracy' (the spec's metric.name; pass "
        "--metric NAME); logged: acc, avg_acc, epoch, loss, runtime (did you mean 'avg_acc'?)"
    )
    report_sweep(spec, records, tmp_path, sweep_id="sw1", title="T", metric="acc", goal="maximize")
    text = (tmp_path / "report.md").read_text()
    assert "## Best 7 by acc (maximize)" in text and "## Smoothed acc, all runs" in text


def test_a_given_metric_ranks_weighs_and_drives_the_trends(replicated_records, tmp_path):
    # a second logged metric, "gap", that only disc.loss decides: bce falls fast, wgan stays
    runs = copy.deepcopy(replicated_records)
    for r in runs:
        bce = r.params["disc"]["loss"] == "bce"
        rng = np.random.default_rng(len(r.history) + int(r.id[1]) * 7 + int(r.id[-1]))
        for h in r.history:
            fall = 0.9 * (1 - np.exp(-h["_step"] / 300)) if bce else 0.0
            h["gap"] = float(1.0 - fall + rng.normal(0, 0.02))
        r.summary["gap"] = r.history[-1]["gap"]
    spec = {"program": "sd", "parameters": {"disc": {"parameters": {"lr": {}, "loss": {}}}}}
    out = tmp_path / "gap"
    report_sweep(spec, runs, out, sweep_id="sw1", title="G", metric="gap", goal="minimize")
    text = (out / "report.md").read_text()
    assert "## Smoothed gap, " in text and "## Best 10 by gap (minimize)" in text
    best = pd.read_csv(out / "best.csv")
    assert best["summary.gap"].is_monotonic_increasing and set(best["disc.loss"]) == {"bce"}
    importance = pd.read_csv(out / "importance.csv")
    assert importance["key"].tolist() == ["disc.loss", "disc.lr"]
    configs = pd.read_csv(out / "configs.csv")
    trend = configs.groupby("disc.loss")["trend"].agg(set)
    assert len(trend["bce"]) == len(trend["wgan"]) == 1 and trend["bce"] != trend["wgan"]
    drivers = pd.read_csv(out / "trend_drivers.csv")
    # 4 against 4 configurations: the smallest p a Fisher test can give, for disc.loss only
    assert set(drivers.loc[drivers["p"] == drivers["p"].min(), "key"]) == {"disc.loss"}
    assert (drivers.loc[drivers["key"] == "disc.lr", "p"] == 1.0).all()
    bce = drivers[(drivers["key"] == "disc.loss") & (drivers["value"] == "bce")]
    assert bce["share"].tolist() in ([1.0, 0.0], [0.0, 1.0])


@pytest.fixture(scope="module")
def replicated_report(replicated_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("replicated")
    spec = {
        "program": "sd",
        "parameters": {
            "disc": {
                "parameters": {
                    "lr": {"values": [1e-5, 1e-4, 1e-3, 1e-2]},
                    "loss": {"values": ["bce", "wgan"]},
                }
            },
            "seed": {"values": [0, 1, 2]},
        },
    }
    paths = report_sweep(spec, replicated_records, out, sweep_id="sw1", title="Replicated")
    return out, paths


def test_a_replicated_sweep_reports_configurations_over_seeds(replicated_report):
    out, paths = replicated_report
    names = [p.name for p in paths]
    assert names[:9] == [
        "runs.csv",
        "configs.csv",
        "history.csv",
        "best.csv",
        "trends.csv",
        "curves.csv",
        "importance.csv",
        "trend_drivers.csv",
        "comparison.png",
    ]
    text = (out / "report.md").read_text()
    assert "- Configurations: 8 configurations × 3 seeds (24 runs);" in text
    assert "a configuration's curve is the mean over its seeds, with a band of ±1 std over" in text
    configs = pd.read_csv(out / "configs.csv")
    assert configs["seeds"].tolist() == [3] * 8
    assert configs["run_ids"][0] == '["c0s0", "c0s1", "c0s2"]'  # lists as JSON
    lr = dict(zip(configs["disc.lr"], configs["trend"], strict=False))
    assert lr == {
        1e-4: "learns fast, holds",
        1e-3: "learns fast, holds",
        1e-2: "not learning",
        1e-5: "not learning",
    }
    assert set(configs["label"]) <= {f"{n}/3 seeds: {t}" for n in (2, 3) for t in set(lr.values())}
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.columns) == {"config", "step", "mean", "std", "seeds"}


def test_importance_and_drivers_answer_the_study(replicated_report):
    out, _ = replicated_report
    importance = pd.read_csv(out / "importance.csv")
    assert importance["key"].tolist() == ["disc.lr", "disc.loss"]  # the seed is not a key
    assert importance["importance"][0] > 0.5 > importance["importance"][1] + 0.4
    drivers = pd.read_csv(out / "trend_drivers.csv")
    flagged = drivers[drivers["flagged"]]
    assert set(flagged["key"]) <= {"disc.lr"} and (drivers["tests"] == len(drivers)).all()
    text = (out / "report.md").read_text()
    assert "![Importance for avg_acc](importance.png)" in text
    assert "| 1 | disc.lr |" in text
    assert f"{len(drivers)} tests were made" in text
    assert "The forests explain " in text and "of the variance of held-out runs" in text
    # each configuration of a trend with its seeds' agreement and its runs
    assert re.search(r"- \*not learning\*: [23]/3 seeds \(sd-c\d+s0, sd-c\d+s1, sd-c\d+s2\)", text)


def test_the_best_run_has_its_command_and_csvs_hold_json(replicated_report):
    out, _ = replicated_report
    text = (out / "report.md").read_text()
    best = pd.read_csv(out / "best.csv")
    top = best.iloc[0]
    assert f"- **{top['name']}** (`{top['run_id']}`, finished): avg_acc = " in text
    lr = "0.0001" if top["disc.lr"] == 1e-4 else "0.001"
    assert f"Train it again:\n\n```\nsrsweep run sd --set disc.lr={lr} --set disc.hid_num=2" in text
    assert "- Best configuration by the mean over its seeds: " in text
    runs = pd.read_csv(out / "runs.csv")
    assert runs["disc.betas"][0] == "[0.9, 0.999]" and runs["arch.hid_num"][0] == "[2, 0]"
    assert [c for c in runs.columns if "runtime" in c] == ["runtime"]


def test_csv_of_numbers_and_strings_is_what_pandas_writes():
    df = pd.DataFrame(
        {
            "run_id": ['a,"b', "c", None],
            "step": [0, 20, 40],
            "acc": [0.1, float("nan"), float("inf")],
            "ok": [True, False, True],
        }
    )
    assert csv_text(df) == df.to_csv(index=False)
    assert csv_text(df).splitlines()[1:] == ['"a,""b",0,0.1,True', "c,20,,False", ",40,inf,True"]
    odd = pd.DataFrame(
        {
            "a,b": ["x\ny", "", "c\rd", 'q"', " s ", float("nan")],
            "v": [-0.0, 1e-300, 2.5e17, 1 / 3, np.float32(0.7).item(), -np.inf],
            "n": np.array([-1, 0, 2**40, 3, 4, 5], dtype=np.int64),
            "u": np.arange(6, dtype=np.uint8),
        }
    )
    assert csv_text(odd) == odd.to_csv(index=False)
    for frame in (odd.head(0), odd[["v"]], odd[["a,b"]], odd.head(1), odd[[]]):
        assert csv_text(frame) == frame.to_csv(index=False), frame.columns


def test_a_long_csv_is_made_in_parts_that_join_to_what_pandas_writes(monkeypatch):
    monkeypatch.setattr(pipeline, "CSV_ROWS", 4)
    df = pd.DataFrame({"run_id": list("abcdefghij"), "v": np.linspace(0, 1, 10)})
    df.loc[3, "v"] = np.nan
    parts = list(csv_parts(df))
    assert len(parts) == 3 and parts[0].startswith("run_id,v\n")
    assert "".join(parts) == df.to_csv(index=False)
    for frame in (df[["v"]], df[[]], df.head(4), df.head(5)):
        assert "".join(csv_parts(frame)) == frame.to_csv(index=False), frame.shape


def test_a_study_left_pending_settles_to_the_study_waited_for(replicated_records, tmp_path):
    # write_report draws while the statistics child finishes (analyse(wait=False)); the
    # settled study, and so its files, must be the one analyse waits for
    args = dict(metric="avg_acc", goal="maximize", curve="acc", title="R")
    waited = analyse(replicated_records, **args)
    early = analyse(replicated_records, wait=False, **args)
    assert early.pending is not None and early.importance is None and early.drivers is None
    settled = early.settled()
    assert settled.pending is None and settled.settled() is settled
    assert waited.importance is not None and waited.drivers is not None
    pd.testing.assert_frame_equal(settled.importance, waited.importance)
    pd.testing.assert_frame_equal(settled.drivers, waited.drivers)
    assert settled.notes == waited.notes
    # written from the settled study: the same files, in the same order, as from the other
    a = pipeline.write_study(settled, tmp_path / "a")
    b = pipeline.write_study(analyse(replicated_records, wait=False, **args), tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b] and "importance.png" in {p.name for p in b}
    for p in a:
        if p.suffix in (".csv", ".md"):
            assert (tmp_path / "b" / p.name).read_text() == p.read_text(), p.name


def test_a_pending_study_is_closed_when_its_report_fails(replicated_records, tmp_path):
    forks = can_fork()  # (where this process has threads, the statistics ran inline)
    early = analyse(replicated_records, metric="avg_acc", goal="maximize", curve="acc", wait=False)
    assert early.pending is not None
    early.pending.close()
    if not forks:  # nothing to end: they are in already
        assert early.settled().importance is not None
        return
    with pytest.raises(RuntimeError, match="closed before its result"):  # not a hang
        early.settled()
