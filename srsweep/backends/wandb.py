"""The W&B server side: register sweeps on a server, run its agents, read results back.

Nothing here is needed offline. ``create --backend wandb`` validates locally first, then
checks credentials and that the server answers (seconds, not a hang) before it asks
``wandb.sweep`` to register anything. Agents are W&B's own (``wandb agent``), which start
every trial in its own process with ``srsweep run <kernel> ${args_json}``.
"""

from __future__ import annotations

import copy
import json
import netrc
import os
import shutil
import socket
import struct
import subprocess
import sys
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
    "offline_dirs",
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


def _records(data: bytes) -> Iterable[bytes]:
    """The payloads of a ``.wandb`` file: a LevelDB-style log of 32 KiB blocks whose
    chunks are (crc32c 4, length 2, type 1) + data; FIRST/MIDDLE/LAST chunks join."""
    pos, pending = _HEADER, b""
    while pos + 7 <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """Config, history and summary of an offline run, decoded with wandb's own record
    protocol (``wandb.proto``) from its ``run-<id>.wandb`` log."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise SrsweepError(f"{run_dir}: no run-*.wandb file")
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    run_id = ""
    for payload in _records(files[0].read_bytes()):
        rec = pb.Record()  # type: ignore[attr-defined]
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id
            items = rec.run.config.update
        elif kind == "config":
            items = rec.config.update
        elif kind == "history":
            row = {
                i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item
            }
            history.append(row)
            continue
        elif kind == "summary":
            summary.update(
                {
                    i.key or ".".join(i.nested_key): json.loads(i.value_json)
                    for i in rec.summary.update
                }
            )
            continue
        else:
            continue
        for item in items:
            if not (item.key or "").startswith("_"):
                config[item.key] = json.loads(item.value_json)
    return {"id": run_id, "config": config, "history": history, "summary": summary}


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
