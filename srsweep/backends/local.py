"""The embedded backend: an SQLite ledger under ``results/`` (no account, no network).

WAL mode lets agents read while one writes; ``claim`` runs the engine inside one
``BEGIN IMMEDIATE`` transaction, so concurrent agents on a machine serialise on the
write lock and never receive the same grid point. The ledger's logic is ``SqlLedger``'s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from srsweep.backends.sql import SqlLedger
from srsweep.backends.sql import new_id
from srsweep.errors import CorruptFileError

if TYPE_CHECKING:
    from srsweep.backends._base import Backend

__all__ = ["LocalBackend", "new_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kernel TEXT NOT NULL, spec TEXT NOT NULL,
    source TEXT NOT NULL, state TEXT NOT NULL, seed INTEGER NOT NULL, created_at REAL NOT NULL,
    remote TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, sweep_id TEXT REFERENCES sweeps(id), seq INTEGER NOT NULL,
    name TEXT NOT NULL, kernel TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,
    config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}', error TEXT, model_path TEXT,
    agent TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    heartbeat_at REAL, attempt INTEGER NOT NULL DEFAULT 1, retry_of TEXT,
    crashes INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs(sweep_id, seq);
CREATE INDEX IF NOT EXISTS runs_by_retry ON runs(retry_of);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_run ON history(run_id, step);
"""

# columns added after the first release, in table order: older ledgers get them on open
_ADDED_COLUMNS = {
    "sweeps": [("remote", "TEXT"), ("reason", "TEXT")],
    "runs": [
        ("heartbeat_at", "REAL"),
        ("attempt", "INTEGER NOT NULL DEFAULT 1"),
        ("retry_of", "TEXT"),
        ("crashes", "INTEGER NOT NULL DEFAULT 0"),
    ],
}


def _migrate(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                except sqlite3.OperationalError as e:  # another agent added it just now
                    if "duplicate column" not in str(e):
                        raise
    conn.execute("CREATE INDEX IF NOT EXISTS runs_by_retry ON runs(retry_of)")


class LocalBackend(SqlLedger):
    """The SQLite ledger at ``root/srsweep.db``; read-only use creates nothing.

    Args:
        root: the results folder (or the ledger's own folder).
        filename: the ledger file's name in it.
        lease_timeout, max_retries: as for ``SqlLedger``.
    """

    history_order = "rowid"  # SQLite's own insertion order

    def __init__(
        self,
        root: str | Path,
        lease_timeout: float | None = None,
        max_retries: int | None = None,
        *,
        filename: str = "srsweep.db",
    ) -> None:
        super().__init__(lease_timeout, max_retries)
        self.root = Path(root)
        self.path = self.root / filename

    @property
    def location(self) -> str:
        return str(self.path)

    def reopen(self) -> LocalBackend:
        return LocalBackend(
            self.root, self.lease_timeout, self.max_retries, filename=self.path.name
        )

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            _migrate(conn)
        except sqlite3.DatabaseError as e:
            raise CorruptFileError(
                f"{self.path}: not a readable srsweep ledger ({e}); "
                "move it aside to start a new one"
            ) from None
        return conn

    def _begin(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # the write lock: claims serialise on it


if TYPE_CHECKING:
    _: Backend = LocalBackend(".")
