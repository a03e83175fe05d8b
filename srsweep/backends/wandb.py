"""The W&B server side: register sweeps on a server, run its agents, read results back.

Nothing here is needed offline. ``create --backend wandb`` validates locally first, then
checks credentials and that the server answers (seconds, not a hang) before it asks
``wandb.sweep`` to register anything. Agents are W&B's own (``wandb agent``), which start
every trial in its own process with ``srsweep run <kernel> ${args_json}``.

For script sweeps run offline, ``agent_trial`` builds a trial's command, environment and
parameter files exactly as W&B's agent does, and ``OfflineRunReader`` reads the
script's offline run back while it is still being written.
"""

from __future__ import annotations

import copy
import json
import netrc
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlparse

from srsweep.backends._base import RunRecord
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from srsweep.spec import Spec

__all__ = [
    "COMMAND",
    "server_spec",
    "parse_path",
    "base_url",
    "require_server",
    "register",
    "agent",
    "sweep_spec",
    "records",
    "to_record",
    "read_offline_run",
    "OfflineRunReader",
    "run_log",
    "offline_dirs",
    "agent_trial",
    "kill_delay",
    "sync",
]

# ${args_json} keeps nested dicts and booleans intact; ${args} would flatten them to
# "--disc={'lr': ...}" strings.
COMMAND = ["${env}", "srsweep", "run", "${program}", "${args_json}"]

_WHAT_TO_SET = (
    "set WANDB_API_KEY (or run `wandb login`), and WANDB_BASE_URL for a self-hosted server"
)


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def _has_credentials(url: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(url).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def require_server(timeout: float = 5.0) -> str:
    """Fail fast unless credentials exist and the server's port answers.

    Raises:
        UsageError: no credentials, or the server cannot be reached; says what to set.
    """
    url = base_url()
    if not _has_credentials(url):
        raise UsageError(f"no W&B credentials for {url}: {_WHAT_TO_SET}")
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot reach the W&B server at {url} ({e}); check the network, "
            f"or {_WHAT_TO_SET}; offline, use the local backend"
        ) from None
    return url


def server_spec(spec: Spec) -> dict[str, Any]:
    """The spec as sent to W&B: ``command`` filled so that a plain ``wandb agent`` runs
    the kernel through ``srsweep run`` exactly as ``srsweep agent`` would."""
    raw = copy.deepcopy(spec.raw)
    if spec.kernel is not None:  # a script's spec goes unchanged: W&B's agent runs it
        raw.setdefault("command", list(COMMAND))
    return raw


def parse_path(text: str) -> tuple[str, str, str] | None:
    """``ENTITY/PROJECT/SWEEP_ID`` -> its parts; None for a local sweep id."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def register(spec: Spec, *, project: str | None, entity: str | None) -> str:
    """Register ``spec`` on the server; returns ``ENTITY/PROJECT/SWEEP_ID``."""
    require_server()
    import wandb

    project = project or spec.raw.get("project") or "srsweep"
    entity = entity or spec.raw.get("entity") or wandb.Api().default_entity
    try:
        sweep_id = wandb.sweep(server_spec(spec), entity=entity, project=project)
    except Exception as e:  # wandb raises CommError, ValueError, ... for a refused sweep
        raise SrsweepError(f"W&B refused the sweep: {e}") from None
    return f"{entity}/{project}/{sweep_id}"


def agent(path: str, count: int | None) -> int:
    """Run W&B's own agent on ``path``; each trial runs in its own process."""
    require_server()
    exe = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    cmd = [exe, "agent", path] + (["--count", str(count)] if count else [])
    return subprocess.call(cmd)


def to_record(run: Any, sweep_path: str, history: Iterable[dict[str, Any]]) -> RunRecord:
    """A W&B API run (``wandb.apis.public.Run``-shaped) as a ``RunRecord``."""
    config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
    summary = {
        k: v
        for k, v in dict(run.summary).items()
        if not k.startswith("_") and isinstance(v, (int, float, str, bool))
    }
    rows = []
    for i, row in enumerate(history):
        step = row.get("_step", i)
        rows.append({"_step": int(step), **{k: v for k, v in row.items() if not k.startswith("_")}})
    state = {
        "finished": "finished",
        "running": "running",
        "crashed": "crashed",
        "failed": "failed",
        "killed": "stopped",
        "preempted": "preempted",
    }
    return RunRecord(
        id=run.id,
        sweep_id=sweep_path,
        name=run.name or run.id,
        kernel=str(config.get("_kernel", "")),
        state=state.get(run.state, run.state),
        params=config,
        config=config,
        summary=summary,
        history=rows,
    )


def sweep_spec(path: str) -> dict[str, Any]:
    """The spec of the W&B sweep at ``path``, as registered."""
    parsed = parse_path(path)
    if parsed is None:
        raise UsageError(f"{path!r}: expected ENTITY/PROJECT/SWEEP_ID")
    require_server()
    import wandb

    config = wandb.Api().sweep(path).config  # type: ignore[no-untyped-call]
    return dict(config) if not isinstance(config, str) else json.loads(config)


def records(path: str) -> list[RunRecord]:
    """Every run of the W&B sweep at ``path``, with full histories (``scan_history``, not
    the sampled ``history()``)."""
    parsed = parse_path(path)
    if parsed is None:
        raise UsageError(f"{path!r}: expected ENTITY/PROJECT/SWEEP_ID")
    require_server()
    import wandb

    entity, project, sweep_id = parsed
    runs = wandb.Api().runs(f"{entity}/{project}", filters={"sweep": sweep_id})
    return [to_record(r, path, r.scan_history()) for r in runs]


# -- offline runs ---------------------------------------------------------------------
_BLOCK = 32 * 1024
_HEADER = 7  # ":W&B", magic (2), version (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class OfflineRunReader:
    """Reads a run's ``run-<id>.wandb`` log, also while wandb is still writing it.

    The log is LevelDB-style: 32 KiB blocks of chunks, each (crc32 4, length 2, type 1)
    + data, a record split over FIRST/MIDDLE/LAST chunks. Records are decoded with
    wandb's own protobuf ``Record``. Each ``read`` consumes the complete records added
    since the last one and stops before a chunk that is not wholly written yet (short,
    or its checksum does not match), so a growing file reads the same as a finished one.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.id = ""
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self._pos = _HEADER  # the first byte not consumed, always a chunk boundary
        self._pending = b""  # a record's FIRST/MIDDLE chunks so far

    def read(self) -> list[dict[str, Any]]:
        """The history rows written since the last call (config and summary update too)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except FileNotFoundError:
            return []
        new: list[dict[str, Any]] = []
        for payload in self._payloads(data):
            self._decode(payload, new)
        return new

    def _payloads(self, data: bytes) -> Iterable[bytes]:
        base, off = self._pos, 0
        while True:
            room = _BLOCK - (base + off) % _BLOCK
            if room < 7:  # a block's tail too short for a header is padding
                if off + room > len(data):
                    return
                off += room
                self._pos = base + off
                continue
            if off + 7 > len(data):
                return
            crc, length, kind = struct.unpack("<IHB", data[off : off + 7])
            chunk = data[off + 7 : off + 7 + length]
            if len(chunk) < length or crc != zlib.crc32(chunk, zlib.crc32(bytes([kind]))):
                return  # not wholly written yet (or the end of a torn file)
            off += 7 + length
            self._pos = base + off
            if kind == _FULL:
                yield chunk
            elif kind == _FIRST:
                self._pending = chunk
            elif kind == _MIDDLE:
                self._pending += chunk
            elif kind == _LAST:
                chunk, self._pending = self._pending + chunk, b""
                yield chunk

    def _decode(self, payload: bytes, new: list[dict[str, Any]]) -> None:
        from wandb.proto import wandb_internal_pb2 as pb

        rec = pb.Record()  # type: ignore[attr-defined]
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in rec.history.item}
            self.history.append(row)
            new.append(row)
        elif kind == "summary":
            self.summary.update({_key(i): json.loads(i.value_json) for i in rec.summary.update})
        elif kind in ("run", "config"):
            if kind == "run":
                self.id = rec.run.run_id
            items = rec.run.config.update if kind == "run" else rec.config.update
            self.config.update(
                {_key(i): json.loads(i.value_json) for i in items if not _key(i).startswith("_")}
            )
        elif kind == "exit":
            self.exit_code = rec.exit.exit_code


def _key(item: Any) -> str:
    return str(item.key or ".".join(item.nested_key))


def run_log(root: Path, run_id: str) -> Path | None:
    """The ``.wandb`` log of run ``run_id`` under ``root/wandb`` (offline or online)."""
    found = sorted((root / "wandb").glob(f"*run-*-{run_id}/run-{run_id}.wandb"))
    return found[-1] if found else None


def read_offline_run(run_dir: str | Path, wait: float = 0.0) -> dict[str, Any]:
    """Config, history and summary of an offline run, decoded with wandb's own record
    protocol (``wandb.proto``) from its ``run-<id>.wandb`` log; a log cut short (still
    being written, or torn) reads up to its last whole record.

    Args:
        wait: seconds to keep reading until the run's exit record is there: wandb's
            writer may still be flushing the log just after ``run.finish()`` returns.
    """
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise SrsweepError(f"{run_dir}: no run-*.wandb file")
    reader = OfflineRunReader(files[0])
    reader.read()
    deadline = time.monotonic() + wait
    while reader.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.05)
        reader.read()
    return {
        "id": reader.id,
        "config": reader.config,
        "history": reader.history,
        "summary": reader.summary,
    }


def offline_dirs(root: Path, run_ids: Iterable[str] | None = None) -> list[Path]:
    """Offline run folders under ``root/wandb`` (all, or those of ``run_ids``)."""
    dirs = sorted((root / "wandb").glob("offline-run-*"))
    if run_ids is not None:
        wanted = set(run_ids)
        dirs = [d for d in dirs if d.name.rsplit("-", 1)[-1] in wanted]
    return dirs


def sync(dirs: list[Path], timeout: float) -> int:
    """Upload offline runs with ``wandb sync``; fails fast without a reachable server."""
    if not dirs:
        return 0
    require_server()
    exe = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    try:
        done = subprocess.run([exe, "sync", *map(str, dirs)], timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SrsweepError(
            f"wandb sync did not finish within {timeout:g}s; the runs stay "
            "offline, run `srsweep sync` again later"
        ) from None
    if done.returncode != 0:
        raise SrsweepError(f"wandb sync failed (exit {done.returncode})")
    return len(dirs)


# -- W&B's agent, mirrored for script sweeps run locally -------------------------------
def agent_trial(
    command: list[Any] | None,
    params: dict[str, Any],
    *,
    program: str,
    sweep_id: str,
    run_id: str,
    env: dict[str, str],
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment W&B's agent (``wandb agent``) would start a trial with,
    writing its parameter files as the agent does.

    Mirrors ``wandb.wandb_agent.Agent._command_run`` with wandb's own helpers, so every
    macro expands exactly as there: ``${envvar:NAME}`` from this process's environment,
    then each whole-item macro (``${args}``, ``${args_json}``, ...) from
    ``create_sweep_command_args``; an unknown macro expands to nothing. One deliberate
    difference: ``${interpreter}`` is this Python (the agent's is ``python`` on PATH).

    Args:
        command: the spec's ``command``; None or empty for W&B's default
            ``${env} ${interpreter} ${program} ${args}``.
        params: the trial's parameters (nested dicts for nested parameters).
        program: the spec's ``program``.
        sweep_id: set as ``WANDB_SWEEP_ID``.
        run_id: set as ``WANDB_RUN_ID``.
        env: the environment to start from; its ``WANDB_DIR`` (default: the current
            folder) holds ``wandb/sweep-<id>/config-<run>.yaml`` (``WANDB_SWEEP_PARAM_PATH``,
            which ``wandb.init`` loads as the run's config) and ``.json``.

    Returns:
        The argv and the full environment of the trial's process.
    """
    from wandb import env as wandb_env
    from wandb.sdk.launch.sweeps import utils
    from wandb.sdk.lib import config_util

    template = [str(c) for c in utils.create_sweep_command(copy.deepcopy(command or None))]
    args = {k: {"value": v} for k, v in params.items()}
    env = dict(env)
    env.setdefault(wandb_env.DIR, os.path.abspath(os.getcwd()))
    folder = os.path.join(env[wandb_env.DIR], "wandb", f"sweep-{sweep_id}")
    param_path = os.path.join(folder, f"config-{run_id}.yaml")
    json_path = os.path.join(folder, f"config-{run_id}.json")
    env[wandb_env.SWEEP_ID], env[wandb_env.RUN_ID] = sweep_id, run_id
    env[wandb_env.SWEEP_PARAM_PATH] = param_path
    env.pop(wandb_env.SERVICE, None)  # the child starts its own wandb service
    config_util.save_config_file_from_dict(param_path, args)  # type: ignore[no-untyped-call]
    values: dict[str, Any] = utils.create_sweep_command_args({"args": args})
    if "${args_json_file}" in template:
        Path(json_path).write_text(values["args_json"][0], encoding="utf-8")
    values.update(interpreter=[sys.executable], program=[program], args_json_file=[json_path])
    if platform.system() != "Windows":
        values["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for item in template:
        if item.startswith("${") and item.endswith("}"):
            argv += [str(v) for v in values.get(item[2:-1]) or []]
        else:
            argv.append(item)
    return argv, env


def kill_delay() -> float:
    """Seconds W&B's agent waits after SIGTERM before it SIGKILLs a stopped run
    (``WANDB_AGENT_KILL_DELAY``, default 30)."""
    from wandb import env as wandb_env
    from wandb.wandb_agent import Agent

    return float(wandb_env.get_agent_kill_delay(str(Agent.KILL_DELAY)) or Agent.KILL_DELAY)
