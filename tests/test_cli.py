from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsweep.cli import main

SPEC = """
program: toy
method: grid
parameters:
  target: {values: [1.0, 2.0]}
  steps: {value: 3}
"""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def cli(runner, results):
    def invoke(*args: str):
        return runner.invoke(main, ["--results", str(results), *args], catch_exceptions=False)

    return invoke


def test_help_lists_commands(cli):
    out = cli("--help").output
    for cmd in ("create", "agent", "run", "ls", "status", "report", "kernels"):
        assert f"  {cmd}" in out


def test_create_agent_status_ls(cli, write_spec, results):
    res = cli("create", str(write_spec(SPEC)))
    assert res.exit_code == 0
    sid = res.stdout.strip().splitlines()[-1]
    assert len(sid) == 8
    assert f"srsweep agent {sid}" in res.stderr
    res = cli("agent", sid)
    done = "agent done: 2 finished (sweep finished: every grid point has run)"
    assert res.exit_code == 0 and done in res.output
    status = cli("status", sid).output.splitlines()
    assert status[0].startswith(
        f"sweep {sid} spec: grid sweep of toy, finished (every grid point has run); 2 finished"
    )
    assert status[1].split() == ["RUN", "NAME", "STATE", "FINAL", "loss", "target"]
    assert [line.split()[2] for line in status[2:]] == ["finished", "finished"]
    assert [line.split()[-1] for line in status[2:]] == ["1", "2"]
    ls = cli("ls").output
    (row,) = [line for line in ls.splitlines() if line.startswith(sid)]
    assert row.split()[4] == "finished" and "2 finished" in row


def test_dry_run_registers_nothing(cli, write_spec, results):
    res = cli("create", "--dry-run", str(write_spec(SPEC)))
    assert res.exit_code == 0 and "valid (grid sweep of kernel toy; sweeps target)" in res.output
    assert not results.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["create", "missing.yaml"], "Error: missing.yaml: no such file"),
        (["agent", "nosuchid"], "Error: unknown sweep id 'nosuchid'"),
        (["status", "nosuchid"], "Error: unknown sweep id 'nosuchid'"),
        (["report", "nosuchid"], "Error: unknown sweep id 'nosuchid'"),
        (["run", "nokernel"], "Error: unknown kernel 'nokernel'; known kernels: "),
        (["run", "toy", "--set", "steps=many"], "Error: --set: steps: must be int, but got 'many'"),
        (["run", "toy", "{not json"], "Error: ARGS_JSON: not valid JSON"),
        (["agent", "x", "--count", "0"], "Invalid value for '--count'"),
        (["kernels", "nokernel"], "Error: unknown kernel 'nokernel'"),
    ],
    ids=[
        "missing-spec",
        "agent-unknown",
        "status-unknown",
        "report-unknown",
        "run-kernel",
        "set-type",
        "bad-json",
        "bad-count",
        "kernels-unknown",
    ],
)
def test_bad_input_exits_2_without_traceback(cli, results, args, message):
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (results / "srsweep.db").exists()


@pytest.mark.parametrize(
    "where, code, message",
    [  # a folder that cannot be made is the machine's (3); a file named instead, usage (2)
        ("/proc/srsweep-results", 3, "cannot write there (No such file or directory)"),
        ("a-file/results", 3, "cannot write there (Not a directory)"),
        ("a-file", 2, "Directory 'a-file' is a file"),
    ],
    ids=["proc", "under-a-file", "a-file"],
)
@pytest.mark.parametrize(
    "command", [["create", "spec.yaml"], ["run", "toy"]], ids=["create", "run"]
)
def test_results_that_cannot_be_written_exit_3(
    runner, write_spec, tmp_path, monkeypatch, where, code, message, command
):
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    monkeypatch.chdir(tmp_path)
    write_spec(SPEC)
    (tmp_path / "a-file").write_text("")
    res = runner.invoke(main, ["--results", where, *command], catch_exceptions=False)
    assert res.exit_code == code, res.output
    assert message in res.stderr
    assert "--results" in res.stderr and "Traceback" not in res.output


def test_bad_spec_leaves_ledger_untouched(cli, write_spec, results):
    sid = cli("create", str(write_spec(SPEC))).stdout.split()[-1]
    before = (results / "srsweep.db").read_bytes()
    res = cli(
        "create",
        str(
            write_spec(
                "program: toy\nmethod: grid\nparameters: {steps: {values: [1, -2]}}\n", "bad.yaml"
            )
        ),
    )
    assert res.exit_code == 2
    assert "bad.yaml: parameters.steps.values[1]: steps: must be >= 1, but got -2" in res.stderr
    assert cli("ls").output.count("\n") == 2  # header + the one good sweep
    assert sid in cli("ls").output
    assert (results / "srsweep.db").read_bytes() == before


def test_run_with_args_json_config_file_and_set(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 2\nopt:\n  lr: 0.2\n")
    res = cli(
        "run",
        "toy",
        json.dumps({"target": 3.0, "opt": {"momentum": 0.5}}),
        "--config",
        str(cfg),
        "--set",
        "opt.lr=0.3",
    )
    assert res.exit_code == 0, res.output
    from srsweep.backends.local import LocalBackend

    (run,) = LocalBackend(tmp_path / "results").runs(None)
    assert run.config["target"] == 3.0 and run.config["steps"] == 2
    assert run.config["opt"] == {"lr": 0.3, "momentum": 0.5}


def test_failed_run_exits_1(cli):
    res = cli("run", "toy", "--set", "fail_at=0")
    assert res.exit_code == 1
    assert "RuntimeError: toy failure at step 0" in res.output


def test_kernels_lists_config(cli):
    out = cli("kernels", "toy").output
    assert "opt.lr = 0.1  (float, 0 < opt.lr <= 10)" in out
    assert "steps = 5  (int, 1 <= steps <= 1000000)" in out
    assert "fail_at = None  (int or null)" in out


def test_stop_and_retry(cli, write_spec):
    sid = cli("create", str(write_spec(SPEC))).stdout.split()[-1]
    assert "stopped" in cli("stop", sid).output
    assert "agent done: no trials (sweep stopped)" in cli("agent", sid).output
    assert "queued 0 run(s)" in cli("retry", sid).output  # and re-opens the sweep
    assert "2 finished" in cli("agent", sid).output


def test_agent_exits_1_when_trials_keep_failing(cli, write_spec):
    spec = write_spec(
        "program: toy\nmethod: grid\nparameters:\n"
        "  target: {values: [1, 2, 3, 4, 5, 6]}\n  fail_at: {value: 0}\n"
    )
    sid = cli("create", str(spec)).stdout.split()[-1]
    res = cli("agent", sid)
    assert res.exit_code == 1
    assert "Error: sweep " in res.output and "5 trials failed in a row" in res.output


def test_a_script_sweep_creates_reports_and_shows_status(cli, write_spec, tmp_path, results):
    from srsweep.backends.local import LocalBackend

    (tmp_path / "train.py").write_text("")
    spec = write_spec(
        "program: train.py\nmethod: grid\nmetric: {name: val_loss}\n"
        "parameters:\n  lr: {values: [0.1, 1.0]}\n"
    )
    res = cli("create", str(spec))
    assert "grid over lr; script train.py" in res.stderr
    sid = res.stdout.strip()
    b = LocalBackend(results)
    for i in range(2):  # as the agent records a script's metrics
        run = b.claim(sid, "test")
        rows = [{"_step": s, "val_loss": 1 / (s + 1 + i), "acc": s / 10} for s in range(12)]
        b.log(run.id, rows)
        b.finish(run.id, "finished", summary={"val_loss": rows[-1]["val_loss"]})
    status = cli("status", sid).output.splitlines()
    assert status[0].startswith(f"sweep {sid} spec: grid sweep of train.py, active")
    assert status[1].split() == ["RUN", "NAME", "STATE", "FINAL", "val_loss", "lr"]
    assert status[2].split()[1:4] == ["script-001", "finished", "0.08333"]
    res = cli("report", sid, "--avg-hor", "3")
    assert res.exit_code == 0, res.output
    report = (results / sid / "report.md").read_text()
    assert "## Smoothed val_loss, all runs" in report and "![Smoothed acc](curve_acc.png)" in report
    assert (results / sid / "curve_acc.png").stat().st_size > 0
    res = cli("report", sid, "--curve", "acc", "--out", str(tmp_path / "acc"))
    assert res.exit_code == 0 and "curve_val_loss.png" in res.output
    res = cli("report", sid, "--metric", "acc", "--goal", "maximize", "--out", str(tmp_path / "m"))
    assert res.exit_code == 0, res.output
    report = (tmp_path / "m" / "report.md").read_text()
    assert "## Smoothed acc, all runs" in report and "## Best 2 by acc (maximize)" in report
    res = cli("report", sid, "--metric", "val_los")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr == (
        f"Error: report: no run of sweep {sid} logged 'val_los'; logged: acc, val_loss "
        "(did you mean 'val_loss'?)\n"
    )


def test_a_script_sweep_without_a_metric_asks_for_a_curve(cli, write_spec, tmp_path):
    (tmp_path / "train.py").write_text("")
    spec = write_spec("program: train.py\nmethod: grid\nparameters:\n  lr: {values: [1, 2]}\n")
    sid = cli("create", str(spec)).stdout.strip()
    res = cli("report", sid)
    assert res.exit_code == 2
    assert "runs a script and its spec names no metric; pass --metric or --curve" in res.output


def test_results_is_accepted_after_the_subcommand_and_wins(runner, write_spec, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    spec = str(write_spec(SPEC))
    res = runner.invoke(
        main,
        ["--results", str(here), "create", spec, "--results", str(there)],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert (there / "srsweep.db").exists() and not here.exists()
    listed = runner.invoke(main, ["ls", "--results", str(there)], catch_exceptions=False)
    assert res.output.strip().splitlines()[-1] in listed.output
    assert "no sweeps yet" in runner.invoke(main, ["ls", "--results", str(here)]).output


def test_a_spec_without_program_registers_and_its_agent_says_how_to_run_it(cli, write_spec):
    res = cli("create", str(write_spec("method: grid\nparameters: {lr: {values: [1, 2]}}\n")))
    assert res.exit_code == 0 and "a command or a Python function" in res.stderr
    sid = res.stdout.strip().splitlines()[-1]
    res = cli("agent", sid)
    assert res.exit_code == 2
    assert "names no program for its command to run" in res.stderr
    assert "srsweep.agent(sweep_id, function=train)" in res.stderr


def test_create_prints_what_wandb_would_warn_about(cli, write_spec, tmp_path):
    (tmp_path / "t.py").write_text("")
    spec = (
        "program: t.py\nmethod: random\nparameters:\n  lr: {distribution: log_uniform, "
        "min: -9, max: -2}\n"
    )
    res = cli("create", str(write_spec(spec)))
    assert res.exit_code == 0
    assert "warning: " in res.stderr and "where min/max specify base-e exponents" in res.stderr


def test_standalone_runs_show_in_ls_and_status(cli, results):
    assert cli("run", "toy", "--set", "steps=3").exit_code == 0
    ls = cli("ls").output
    (row,) = [line for line in ls.splitlines() if line.startswith("runs ")]
    assert "(srsweep run)" in row and "1 finished" in row
    status = cli("status", "runs").output.splitlines()
    assert status[0] == "standalone runs (srsweep run): 1 finished"
    assert status[1].split() == ["RUN", "NAME", "KERNEL", "STATE", "FINAL"]
    assert status[2].split()[1:4] == ["toy-001", "toy", "finished"]
    assert status[2].split()[4].startswith("loss=")


def test_agent_max_retries_fails_a_trial_whose_agents_keep_dying(
    cli, write_spec, results, monkeypatch
):
    from srsweep.backends.local import LocalBackend

    monkeypatch.setenv("SRSWEEP_LEASE_TIMEOUT", "0.5")
    sid = cli("create", str(write_spec(SPEC))).stdout.strip().splitlines()[-1]
    dead = LocalBackend(results).claim(sid, "an agent that died")  # never beats again
    time.sleep(1.0)
    res = cli("agent", sid, "--max-retries", "1")
    assert res.exit_code == 0, res.output
    lost = LocalBackend(results).run(dead.id)
    assert lost.state == "failed" and lost.error.startswith("crashed 1 times: agent lost")
    assert "agent done: 2 finished" not in res.output and "1 finished" in res.output
