"""W&B's agent mirrored for script sweeps (commands, environment, parameter files), and
reading a run's ``.wandb`` log while it is still being written. No processes here."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import pytest
import yaml

from srsweep.backends import wandb as wb

EVERY_MACRO = [
    "${env}",
    "${interpreter}",
    "${program}",
    "${args}",
    "${args_no_equals}",
    "${args_no_hyphens}",
    "${args_no_boolean_flags}",
    "${args_json}",
    "${args_json_file}",
    "--out=${envvar:SRSWEEP_TEST_OUT}/x",
    "${envvar:SRSWEEP_TEST_UNSET}",
    "${not_a_macro}",
    "plain",
    7,
]
PARAMS = {"opt": {"lr": 0.5, "betas": [0.9, 0.99]}, "flag": True, "off": False, "n": None}


def _real_agent(monkeypatch, tmp_path, command, params):
    """What wandb's own ``Agent._command_run`` starts, its process replaced by a stub."""
    from wandb import wandb_agent

    started = {}

    class Stub:
        def __init__(self, command=None, env=None, **_):
            started.update(argv=command, env=env)

    monkeypatch.setattr(wandb_agent, "AgentProcess", Stub)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "real"))
    monkeypatch.setenv("WANDB_SWEEP_ID", "swp")
    for name in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # the agent sets both
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="swp")
    agent._sweep_command = command
    args = {k: {"value": v} for k, v in params.items()}
    agent._command_run({"run_id": "run1", "program": "train.py", "args": args})
    return started["argv"], started["env"]


@pytest.mark.parametrize("command", [EVERY_MACRO, None], ids=["every-macro", "default"])
def test_commands_and_environment_match_wandbs_own_agent(monkeypatch, tmp_path, command):
    monkeypatch.setenv("SRSWEEP_TEST_OUT", "/data")
    monkeypatch.delenv("SRSWEEP_TEST_UNSET", raising=False)
    monkeypatch.setenv("WANDB_SERVICE", "a-parent-service")
    real_argv, real_env = _real_agent(monkeypatch, tmp_path, command and list(command), PARAMS)
    ours, real = tmp_path / "ours", tmp_path / "real"
    argv, env = wb.agent_trial(
        command,
        PARAMS,
        program="train.py",
        sweep_id="swp",
        run_id="run1",
        env={**real_env, "WANDB_DIR": str(ours)},
    )
    # the one deliberate difference: ${interpreter} is this Python, not `python` on PATH
    expected = [sys.executable if a == "python" else a for a in real_argv]
    assert argv == [a.replace(str(real), str(ours)) for a in expected]
    same = {
        k: v.replace(str(real), str(ours)) for k, v in real_env.items() if k.startswith("WANDB_")
    }
    assert {k: v for k, v in env.items() if k.startswith("WANDB_")} == {
        k: v
        for k, v in same.items()
        if k != "WANDB_SERVICE"  # popped as AgentProcess does
    }
    assert (env["WANDB_SWEEP_ID"], env["WANDB_RUN_ID"]) == ("swp", "run1")
    params = Path("wandb", "sweep-swp", "config-run1.yaml")
    assert env["WANDB_SWEEP_PARAM_PATH"] == str(ours / params)
    assert (ours / params).read_text() == (real / params).read_text()
    json_file = ours / params.with_suffix(".json")
    assert json_file.exists() == (command is not None)


def test_every_macro_expands_as_documented(monkeypatch, tmp_path):
    monkeypatch.setenv("SRSWEEP_TEST_OUT", "/data")
    monkeypatch.delenv("SRSWEEP_TEST_UNSET", raising=False)
    argv, env = wb.agent_trial(
        EVERY_MACRO,
        {"opt": {"lr": 0.5}, "flag": True, "off": False},
        program="train.py",
        sweep_id="swp",
        run_id="run1",
        env={"WANDB_DIR": str(tmp_path)},
    )
    json_file = str(tmp_path / "wandb" / "sweep-swp" / "config-run1.json")
    nested = "{'lr': 0.5}"
    assert argv == [
        "/usr/bin/env",
        sys.executable,
        "train.py",
        *[f"--opt={nested}", "--flag=True", "--off=False"],
        *["--opt", nested, "--flag", "True", "--off", "False"],
        *[f"opt={nested}", "flag=True", "off=False"],
        *[f"--opt={nested}", "--flag"],
        json.dumps({"opt": {"lr": 0.5}, "flag": True, "off": False}),
        json_file,
        "--out=/data/x",
        "SRSWEEP_TEST_UNSET",  # W&B's agent leaves an unset variable's name
        # ${not_a_macro} expands to nothing
        "plain",
        "7",
    ]
    assert json.loads(Path(json_file).read_text()) == {
        "opt": {"lr": 0.5},
        "flag": True,
        "off": False,
    }
    assert yaml.safe_load(Path(env["WANDB_SWEEP_PARAM_PATH"]).read_text()) == {
        "wandb_version": 1,
        "opt": {"value": {"lr": 0.5}},
        "flag": {"value": True},
        "off": {"value": False},
    }


def test_default_command_is_wandbs():
    argv, env = wb.agent_trial(
        [], {"a": 1}, program="t.py", sweep_id="s", run_id="r", env={"WANDB_DIR": "/tmp"}
    )
    assert argv == ["/usr/bin/env", sys.executable, "t.py", "--a=1"]


def test_script_specs_go_to_a_server_unchanged(tmp_path):
    from srsweep.spec import validate

    (tmp_path / "t.py").write_text("")
    raw = {"program": "t.py", "method": "grid", "parameters": {"a": {"values": [1, 2]}}}
    assert "command" not in wb.server_spec(validate(raw, str(tmp_path / "s.yaml")))


def test_kill_delay_follows_wandbs_setting(monkeypatch):
    monkeypatch.delenv("WANDB_AGENT_KILL_DELAY", raising=False)
    assert wb.kill_delay() == 30.0
    monkeypatch.setenv("WANDB_AGENT_KILL_DELAY", "2")
    assert wb.kill_delay() == 2.0


# -- reading a growing log ------------------------------------------------------------
_KINDS = {"full": 1, "first": 2, "middle": 3, "last": 4}


def _frame(payloads: list[bytes]) -> bytes:
    """A ``.wandb`` log of ``payloads``, framed as wandb's writer frames it."""
    out = bytearray(b":W&B\xe1\xbe\x00")
    for payload in payloads:
        first, rest = True, payload
        while True:
            room = 32 * 1024 - len(out) % (32 * 1024)
            if room < 7:
                out += b"\0" * room
                continue
            chunk, rest = rest[: room - 7], rest[room - 7 :]
            kind = _KINDS[
                ("full" if not rest else "first") if first else ("last" if not rest else "middle")
            ]
            crc = zlib.crc32(chunk, zlib.crc32(bytes([kind])))
            out += struct.pack("<IHB", crc, len(chunk), kind) + chunk
            first = False
            if not rest:
                break
    return bytes(out)


def _log() -> tuple[bytes, list[dict[str, object]]]:
    from wandb.proto import wandb_internal_pb2 as pb

    run = pb.Record()
    run.run.run_id = "abc"
    item = run.run.config.update.add()
    item.key, item.value_json = "opt", json.dumps({"lr": 0.5})
    rows = [{"_step": i, "loss": 1 / (i + 1), "note": "x" * (i * 1500)} for i in range(16)]
    rows[8]["note"] = "y" * 70_000  # FIRST, MIDDLE and LAST chunks
    records = [run]
    for row in rows:  # long notes: records that span 32 KiB blocks
        rec = pb.Record()
        for k, v in row.items():
            it = rec.history.item.add()
            it.key, it.value_json = k, json.dumps(v)
        records.append(rec)
    summary = pb.Record()
    it = summary.summary.update.add()
    it.key, it.value_json = "loss", json.dumps(rows[-1]["loss"])
    records.append(summary)
    return _frame([r.SerializeToString() for r in records]), rows


def test_a_log_reads_the_same_growing_or_whole(tmp_path):
    data, rows = _log()
    assert len(data) > 3 * 32 * 1024
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(data)
    whole = wb.OfflineRunReader(path)
    assert whole.read() == rows and whole.config == {"opt": {"lr": 0.5}}
    assert whole.summary == {"loss": rows[-1]["loss"]} and whole.id == "abc"
    # cut anywhere (mid-header, mid-chunk, mid-record, in block padding): a prefix of
    # the rows, then the rest once the file is whole
    for cut in [*range(0, len(data), 4099), *range(32 * 1024 - 9, 32 * 1024 + 9)]:
        path.write_bytes(data[:cut])
        growing = wb.OfflineRunReader(path)
        first = growing.read()
        assert first == rows[: len(first)]
        path.write_bytes(data)
        assert first + growing.read() == rows, cut


def test_a_torn_or_corrupt_tail_stops_cleanly(tmp_path):
    data, rows = _log()
    run_dir = tmp_path / "offline-run-x-abc"
    run_dir.mkdir()
    (run_dir / "run-abc.wandb").write_bytes(data[: len(data) // 2])
    got = wb.read_offline_run(run_dir)
    assert 0 < len(got["history"]) < len(rows) and got["history"] == rows[: len(got["history"])]
    bad = bytearray(data)
    bad[-3] ^= 0xFF  # the summary record's checksum no longer matches
    (run_dir / "run-abc.wandb").write_bytes(bytes(bad))
    got = wb.read_offline_run(run_dir)
    assert got["history"] == rows and got["summary"] == {}


def test_missing_log_reads_nothing(tmp_path):
    assert wb.OfflineRunReader(tmp_path / "none.wandb").read() == []
    assert wb.run_log(tmp_path, "abc") is None
