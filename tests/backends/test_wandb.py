"""The W&B side without a network: command generation, offline files, API conversion,
what a W&B backend refuses, the no-server error path, and that no secret is ever
written."""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from srsweep import config as _config
from srsweep.agents import run_single
from srsweep.backends import ServerAgents
from srsweep.backends import wandb as wb
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.errors import UsageError
from srsweep.kernels import get
from srsweep.spec import validate

SPEC = {
    "program": "toy",
    "method": "grid",
    "parameters": {
        "opt": {"parameters": {"lr": {"values": [0.05, 0.2]}, "momentum": {"value": 0.5}}},
        "flag": {"values": [True, False]},
        "steps": {"value": 3},
        "fail_at": {"value": None},
    },
}


def _agent_argv(spec_raw: dict, params: dict) -> list[str]:
    """What `wandb agent` runs for one trial: its own macro expansion of ``command``."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    argv = []
    for part in spec_raw["command"]:
        if part == "${env}":
            continue
        argv += {"${program}": [spec_raw["program"]], "${args_json}": args["args_json"]}.get(
            part, [part]
        )
    return argv


def test_server_spec_runs_srsweep_with_args_json():
    raw = wb.server_spec(validate(SPEC, "s.yaml"))
    assert raw["command"] == ["${env}", "srsweep", "run", "${program}", "${args_json}"]
    assert raw["program"] == "toy" and raw["parameters"] == SPEC["parameters"]


def test_nested_and_boolean_params_round_trip_through_args_json(tmp_path):
    from srsweep.engine import suggest

    raw = wb.server_spec(validate(SPEC, "s.yaml"))
    kernel = get("toy")
    for params in suggest(raw, [], 4, seed=0):
        argv = _agent_argv(raw, params)
        assert argv[:3] == ["srsweep", "run", "toy"]
        results = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        res = CliRunner().invoke(main, ["--results", str(results), *argv[1:]])
        assert res.exit_code == 0, res.output
        (run,) = LocalBackend(results).runs(None)
        expected = _config.to_dict(_config.build(kernel.config, params, "agent"))
        assert run.config == expected  # what `srsweep agent` would have trained
        assert isinstance(run.config["flag"], bool)


@pytest.mark.slow
def test_offline_run_reads_back_with_wandb_records(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    results = tmp_path / "results"
    rec = run_single(
        LocalBackend(results),
        "toy",
        {"steps": 4, "opt.lr": 0.25},
        results=results,
        source="--set",
        echo=lambda s: None,
    )
    from srsweep.tracking import flush_wandb

    flush_wandb()  # offline runs are written in the background
    (run_dir,) = wb.offline_dirs(results, [rec.id])
    got = wb.read_offline_run(run_dir, wait=10)
    stored = LocalBackend(results).run(rec.id)
    assert got["id"] == rec.id
    assert got["config"]["opt"] == {"lr": 0.25, "momentum": 0.0}
    assert got["config"]["steps"] == 4
    assert [h["_step"] for h in got["history"]] == [0, 1, 2, 3]
    assert [h["loss"] for h in got["history"]] == pytest.approx([h["loss"] for h in stored.history])
    assert got["summary"]["loss"] == pytest.approx(stored.summary["loss"])
    assert got["summary"]["state"] == "finished"


def test_api_runs_become_records():
    rows = [{"_step": i, "_runtime": 1.0, "acc": 0.5 + i / 10, "epoch": i * 25} for i in range(3)]
    run = SimpleNamespace(
        id="abc",
        name="sd-1",
        job_type="sd",
        created_at="2024-05-06T07:08:09Z",
        state="killed",
        config={"disc": {"lr": 1e-3}, "_wandb": {"x": 1}},
        summary={"acc": 0.7, "_runtime": 3, "table": {"nested": 1}},
    )
    rec = wb.to_record(run, "ent/proj/swp", iter(rows))
    assert (rec.id, rec.name, rec.state, rec.sweep_id) == ("abc", "sd-1", "stopped", "ent/proj/swp")
    assert rec.kernel == "sd" and rec.created_at == 1714979289.0
    assert rec.config == {"disc": {"lr": 1e-3}} and rec.summary == {"acc": 0.7}
    assert rec.history == [{"_step": i, "acc": 0.5 + i / 10, "epoch": i * 25} for i in range(3)]
    from srsweep.reports import history_frame
    from srsweep.reports import runs_frame

    assert list(history_frame([rec])["acc"]) == [0.5, 0.6, 0.7]
    assert runs_frame([rec])["disc.lr"].tolist() == [1e-3]


@pytest.fixture
def no_netrc(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def _create_wandb(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(SPEC))
    t0 = time.monotonic()
    res = CliRunner().invoke(
        main, ["--results", str(tmp_path / "results"), "create", str(spec), "--backend", "wandb"]
    )
    return res, time.monotonic() - t0


def test_no_credentials_fails_fast(tmp_path, no_netrc):
    res, took = _create_wandb(tmp_path)
    assert res.exit_code == 2 and took < 5
    assert "no W&B credentials for https://api.wandb.ai: set WANDB_API_KEY" in res.output
    assert not (tmp_path / "results").exists()


def test_unreachable_server_fails_fast(tmp_path, no_netrc, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    res, took = _create_wandb(tmp_path)
    assert res.exit_code == 2 and took < 5
    assert "cannot reach the W&B server at http://127.0.0.1:9" in res.output
    assert "Traceback" not in res.output and "x" * 40 not in res.output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_no_secret_is_written_anywhere(tmp_path, monkeypatch):
    secret = "srsweep-test-secret-4f1c9a7e2b"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    results = tmp_path / "results"
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(SPEC))
    cli = CliRunner()
    out = [cli.invoke(main, ["--results", str(results), "create", str(spec)])]
    sid = out[0].stdout.split()[-1]
    out += [
        cli.invoke(main, ["--results", str(results), *args])
        for args in (["agent", sid], ["status", sid], ["report", sid])
    ]
    assert all(r.exit_code == 0 for r in out), [r.output for r in out]
    from srsweep.tracking import flush_wandb

    flush_wandb()
    assert wb.offline_dirs(results), "the runs were mirrored to offline W&B runs"
    files = [p for p in results.rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
    assert all(secret not in r.output for r in out)


@pytest.mark.slow
def test_report_figures_become_images_of_a_report_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = tmp_path / "s.yaml"
    spec.write_text("program: toy\nmethod: grid\nparameters:\n  target: {values: [1, 2]}\n")
    results = tmp_path / "results"

    def cli(*args):
        return CliRunner().invoke(main, ["--results", str(results), *args])

    sid = cli("create", str(spec)).output.split()[2]
    assert cli("agent", sid).exit_code == 0
    res = cli("report", sid)
    assert res.exit_code == 0, res.output
    assert f"offline W&B run report_{sid}; `srsweep sync {sid}` uploads it" in res.output
    (run_dir,) = wb.offline_dirs(results, [f"report_{sid}"])
    (row,) = wb.read_offline_run(run_dir, wait=10)["history"]
    pngs = sorted(p.stem for p in (results / sid).glob("*.png"))
    logged = sorted({k.split(".")[0] for k in row if not k.startswith("_")})
    assert pngs and logged == pngs  # every figure, as an image
    assert all(row[f"{k}._type"] == "image-file" for k in pngs)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    shutil.rmtree(run_dir)
    assert "W&B" not in cli("report", sid).output  # disabled: nothing logged, nothing said
    assert not wb.offline_dirs(results, [f"report_{sid}"])


# -- what a W&B server does not do -----------------------------------------------------
PATH = "ent/proj/swp1"
REFUSED = {
    "sweeps": (lambda b: b.sweeps(), "`srsweep ls` lists those of the local ledger"),
    "set_sweep_state": (
        lambda b: b.set_sweep_state(PATH, "stopped"),
        f"stop or resume it on its server with `wandb sweep --stop {PATH}`",
    ),
    "claim": (
        lambda b: b.claim(PATH, "a"),
        f"its server hands the trials to its own agents, one by one; run `srsweep agent {PATH}`",
    ),
    "claim_pack": (
        lambda b: b.claim_pack(PATH, "a", 4, key=repr, candidates=16),
        f"its server hands the trials to its own agents, one by one; run `srsweep agent {PATH}`",
    ),
    "start_run": (
        lambda b: b.start_run("toy", {}, "a"),
        "a run outside a sweep is kept in the local ledger: `srsweep run toy`",
    ),
    "heartbeat": (lambda b: b.heartbeat(["ent/proj/r1"]), "writes its own run"),
    "log": (lambda b: b.log("ent/proj/r1", [{"_step": 0}]), "writes its own run"),
    "set_config": (lambda b: b.set_config("ent/proj/r1", {}), "writes its own run"),
    "finish": (lambda b: b.finish("ent/proj/r1", "finished"), "writes its own run"),
    "requeue": (lambda b: b.requeue("ent/proj/r1"), "where `srsweep retry` re-queues"),
    "retry": (lambda b: b.retry(PATH, ("failed",)), f"`wandb sweep --resume {PATH}`"),
    "runs(None)": (lambda b: b.runs(None), "runs outside a sweep are kept in the local ledger"),
}


@pytest.mark.parametrize("name", sorted(REFUSED), ids=sorted(REFUSED))
def test_a_wandb_backend_refuses_what_its_server_does_and_says_what_to_do(name, no_netrc):
    call, says = REFUSED[name]
    with pytest.raises(UsageError) as err:
        call(wb.WandbBackend())
    assert says in str(err.value)


def test_a_wandb_backend_runs_the_servers_agents():
    assert isinstance(wb.WandbBackend(), ServerAgents)
    assert not isinstance(LocalBackend("results"), ServerAgents)
    assert wb.WandbBackend().reopen().location == wb.base_url()


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.sweep("swp1"),
        lambda b: b.runs("proj/swp1"),
        lambda b: b.run_server_agent("swp1", None),
    ],
    ids=["sweep", "runs", "run_server_agent"],
)
def test_a_wandb_backend_takes_wandb_paths(call):
    with pytest.raises(UsageError, match="expected ENTITY/PROJECT/SWEEP_ID"):
        call(wb.WandbBackend())


def test_reading_a_wandb_sweep_without_credentials_fails_fast(no_netrc):
    t0 = time.monotonic()
    for call in (
        lambda b: b.sweep(PATH),
        lambda b: b.runs(PATH),
        lambda b: b.run("ent/proj/r1"),
        lambda b: b.run_server_agent(PATH, 1),
    ):
        with pytest.raises(UsageError, match="no W&B credentials for https://api.wandb.ai"):
            call(wb.WandbBackend())
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stop", PATH], f"Error: W&B sweep {PATH}: stop or resume it on its server"),
        (["retry", PATH], f"Error: W&B sweep {PATH}: a W&B server does not queue trials"),
        (["agent", PATH], "Error: no W&B credentials for https://api.wandb.ai"),
        (["status", PATH], "Error: no W&B credentials for https://api.wandb.ai"),
        (["report", PATH], "Error: no W&B credentials for https://api.wandb.ai"),
    ],
    ids=["stop", "retry", "agent", "status", "report"],
)
def test_commands_on_a_wandb_sweep_go_to_its_server(tmp_path, no_netrc, args, says):
    res = CliRunner().invoke(main, ["--results", str(tmp_path / "results"), *args])
    assert res.exit_code == 2 and says in res.output
    assert "Traceback" not in res.output


def test_a_local_sweep_registered_on_wandb_is_run_there(tmp_path, no_netrc):
    results = tmp_path / "results"
    sid = LocalBackend(results).create_sweep(validate(SPEC, "s.yaml"), remote=PATH)
    for command in ("agent", "report", "status"):
        res = CliRunner().invoke(main, ["--results", str(results), command, sid])
        assert res.exit_code == 2, res.output
        assert "Error: no W&B credentials for https://api.wandb.ai" in res.output
