"""Offline W&B runs on this machine: reading a run's ``.wandb`` log (also while wandb
is still writing it), finding the offline run folders under ``results/wandb``, and
uploading them with ``wandb sync``."""

from __future__ import annotations

import json
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep.backends.wandb.server import require_server
from srsweep.backends.wandb.server import wandb_exe
from srsweep.errors import SrsweepError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["OfflineRunReader", "read_offline_run", "run_log", "offline_dirs", "sync"]

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
    try:
        done = subprocess.run([wandb_exe(), "sync", *map(str, dirs)], timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SrsweepError(
            f"wandb sync did not finish within {timeout:g}s; the runs stay "
            "offline, run `srsweep sync` again later"
        ) from None
    if done.returncode != 0:
        raise SrsweepError(f"wandb sync failed (exit {done.returncode})")
    return len(dirs)
