"""Where sweeps live: the ``Backend`` protocol, its implementations, and the one place
that decides which of them holds a sweep (``open_backend``).

- ``LocalBackend``: the embedded SQLite ledger under the results folder (the default).
- ``WandbBackend``: a W&B server's sweeps; its own agents run the trials
  (``ServerAgents``), so only the register and read side of the protocol is offered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from srsweep.backends._base import TERMINAL
from srsweep.backends._base import Backend
from srsweep.backends._base import RunRecord
from srsweep.backends._base import ServerAgents
from srsweep.backends._base import SweepRecord
from srsweep.backends._base import current
from srsweep.backends.local import LocalBackend
from srsweep.backends.postgres import SCHEMES
from srsweep.backends.postgres import PostgresBackend
from srsweep.backends.sql import SqlLedger
from srsweep.backends.wandb import WandbBackend
from srsweep.backends.wandb import parse_path
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.spec import Spec

__all__ = [
    "TERMINAL",
    "Backend",
    "LocalBackend",
    "PostgresBackend",
    "SqlLedger",
    "RunRecord",
    "SERVERS",
    "ServerAgents",
    "SweepRecord",
    "WandbBackend",
    "current",
    "open_backend",
    "open_ledger",
    "register_sweep",
]

SERVERS = ("local", "wandb")  # where ``register_sweep`` can register a sweep


def open_ledger(results: str | Path, ledger: str | None = None) -> SqlLedger:
    """The ledger: standalone runs, local sweeps, and the local record of every sweep
    registered on a server.

    Args:
        results: the results folder (model files, reports; the SQLite ledger by default).
        ledger: where the ledger is, if not ``results/srsweep.db``: a folder or ``.db``
            file path, ``sqlite:///PATH``, or ``postgresql://USER@HOST:PORT/DB``.
            Default: ``SRSWEEP_LEDGER``, else the results folder.

    Raises:
        UsageError: ``ledger`` is none of these.
    """
    ref = ledger if ledger is not None else os.environ.get("SRSWEEP_LEDGER") or None
    if ref is None:
        return LocalBackend(Path(results))
    if ref.startswith(SCHEMES):
        return PostgresBackend(ref)
    if "://" in ref and not ref.startswith("sqlite:///"):
        raise UsageError(
            f"--ledger {ref!r}: expected a path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    path = Path(ref.removeprefix("sqlite://"))
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return LocalBackend(path.parent, filename=path.name)
    return LocalBackend(path)


def open_backend(
    ref: str, *, results: str | Path, ledger: str | None = None
) -> tuple[Backend, str]:
    """The backend that holds sweep ``ref``, and the sweep's id there.

    Args:
        ref: a sweep id of the ledger under ``results`` (its W&B server instead when the
            sweep was registered there: ``SweepRecord.remote``), or a W&B sweep's path
            ``ENTITY/PROJECT/SWEEP_ID``.
        results: the results folder.
        ledger: where the ledger is (see ``open_ledger``).

    Raises:
        UsageError: ``ref`` is neither a sweep id nor a W&B path.
        NotFoundError: the ledger has no sweep ``ref``.
    """
    if parse_path(ref) is not None:
        return WandbBackend(), ref
    if "/" in ref:
        raise UsageError(f"{ref!r}: expected a local sweep id or ENTITY/PROJECT/SWEEP_ID")
    book = open_ledger(results, ledger)
    remote = book.sweep(ref).remote
    if remote is None:
        return book, ref
    book.close()
    return WandbBackend(), remote


def register_sweep(
    spec: Spec,
    ledger: Backend,
    *,
    server: str = "local",
    project: str | None = None,
    entity: str | None = None,
) -> SweepRecord:
    """Register a validated ``spec``: in ``ledger``, or with ``server="wandb"`` on the W&B
    server first, the ledger then recording it (``SweepRecord.remote``, its W&B path)
    so that ``open_backend`` finds it there by its local id too.

    Args:
        project: the W&B project (default: the spec's, else "srsweep"); W&B only.
        entity: the W&B entity (default: the spec's, else the account's); W&B only.

    Raises:
        UsageError: ``server`` is not one of ``SERVERS``, or the W&B server cannot be
            used (no credentials, unreachable); nothing is registered then.
    """
    if server not in SERVERS:
        raise UsageError(f"server {server!r}: expected one of {', '.join(SERVERS)}")
    remote = None
    if server == "wandb":
        remote = WandbBackend(project=project, entity=entity).create_sweep(spec)
    return ledger.sweep(ledger.create_sweep(spec, remote=remote))
