"""The embedded backend: an SQLite ledger under ``results/`` (no account, no network).

WAL mode lets agents read while one writes; ``claim`` runs the engine inside one
``BEGIN IMMEDIATE`` transaction, so concurrent agents on a machine serialise on the
write lock and never receive the same grid point. The ledger's logic is ``SqlLedger``'s.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep.backends.sql import SqlLedger
from srsweep.backends.sql import new_id
from srsweep.errors import CorruptFileError
from srsweep.errors import EnvironmentFault
from srsweep.errors import LedgerLostError
from srsweep.errors import NotFoundError

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
CREATE TABLE IF NOT EXISTS history_columns (
    run_id TEXT NOT NULL REFERENCES runs(id), key TEXT NOT NULL, pos INTEGER NOT NULL,
    kind TEXT NOT NULL, n INTEGER NOT NULL, present BLOB, data BLOB NOT NULL, last TEXT,
    PRIMARY KEY (run_id, key));
-- each run's last values without reading past the data blobs that come before them in
-- a row (SQLite walks a blob's overflow pages to reach the next column): last_logged
CREATE INDEX IF NOT EXISTS history_columns_last ON history_columns(run_id, pos, key, last);
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


def _writable(path: Path) -> bool:
    """Whether this process may write the ledger and its folder (WAL files live there)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


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
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._last_write = "nothing yet"

    @property
    def location(self) -> str:
        return str(self.path)

    def reopen(self) -> LocalBackend:
        """A handle of its own on the same file: it stops, as this one does, should that
        file be replaced by another."""
        again = LocalBackend(
            self.root, self.lease_timeout, self.max_retries, filename=self.path.name
        )
        again._identity = self._identity
        return again

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            self.root.mkdir(parents=True, exist_ok=True)
        if not create and not _writable(self.path):
            return self._connect_read_only()
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            self._compact_ended(conn)
        except sqlite3.DatabaseError as e:
            raise self._unreadable(e) from None
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """A ledger on a read-only file system (or a file this user may not write):
        read as it is, without creating or migrating anything."""
        try:
            try:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=60.0, isolation_level=None
                )
                conn.execute("SELECT 1 FROM sweeps LIMIT 1")
            except sqlite3.OperationalError:  # WAL needs a writable folder for its index
                conn = sqlite3.connect(
                    f"file:{self.path}?immutable=1", uri=True, isolation_level=None
                )
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='history_columns'"
            ).fetchone():  # older than the columns: its histories are all rows
                conn.execute(
                    "CREATE TEMP TABLE history_columns (run_id TEXT, key TEXT, pos INTEGER,"
                    " kind TEXT, n INTEGER, present BLOB, data BLOB, last TEXT)"
                )
        except sqlite3.DatabaseError as e:
            raise self._unreadable(e) from None
        have |= {row[1] for row in conn.execute("PRAGMA table_info(sweeps)")}
        if any(n not in have for cols in _ADDED_COLUMNS.values() for n, _ in cols):
            conn.close()
            raise CorruptFileError(
                f"{self.path}: written by an older srsweep and read-only here, so it cannot "
                "be brought up to date; open it once where it can be written, or copy it"
            )
        return conn

    def _unreadable(self, e: sqlite3.DatabaseError) -> CorruptFileError:
        if "not a database" in str(e) or "malformed" in str(e):
            return CorruptFileError(
                f"{self.path}: not a readable srsweep ledger ({e}); "
                "move it aside to start a new one"
            )
        return CorruptFileError(f"{self.path}: cannot open the ledger ({e})")

    def _begin(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # the write lock: claims serialise on it

    # -- a watched ledger: an agent notices the file going away under it ----------------
    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        conn: sqlite3.Connection | None = super()._db(create)
        if conn is not None:
            self._watch()
        return conn

    def _watch(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._gone("was deleted")
        identity = (st.st_dev, st.st_ino)
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            self._gone("was replaced by another file")
        elif st.st_size < 100:  # shorter than SQLite's header: truncated
            self._gone(f"was truncated to {st.st_size} bytes")

    def _gone(self, what: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        raise LedgerLostError(
            f"the ledger {self.path} {what} while this process used it; stopping (last "
            f"written here: {self._last_write}). Restore it from a backup (`srsweep backup`) "
            "or start a new one; runs after that point are not in any ledger"
        )

    def _x(self, db: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        try:
            cur = super()._x(db, sql, args)
        except sqlite3.OperationalError as e:
            if any(w in str(e) for w in ("disk is full", "disk I/O", "readonly database")):
                hint = " (a read-only file system or file?)" if "readonly" in str(e) else ""
                raise EnvironmentFault(
                    f"the ledger {self.path} cannot be written: {e}{hint}"
                ) from None
            raise
        except sqlite3.DatabaseError as e:  # garbage where the ledger was
            self._gone(f"is corrupt ({e}; integrity check: {self._integrity()})")
        if sql.lstrip().startswith(("INSERT", "UPDATE", "DELETE")):
            self._last_write = f"{sql.split()[0].lower()} at {time.strftime('%H:%M:%S')}"
        return cur

    def _integrity(self) -> str:
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as check:
                return str(check.execute("PRAGMA quick_check").fetchone()[0])
        except sqlite3.DatabaseError as e:
            return str(e)

    def backup(self, to: str | Path) -> Path:
        """A consistent copy of the ledger at ``to`` (SQLite's online backup: agents may
        go on writing meanwhile), written atomically. CorruptFileError, and ``to`` left as
        it was, when the copy fails SQLite's quick check."""
        src = self._db()
        if src is None:
            raise NotFoundError(f"no ledger at {self.path} to back up")
        target = Path(to)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with closing(sqlite3.connect(tmp)) as out:
                src.backup(out)
                check = str(out.execute("PRAGMA quick_check").fetchone()[0])
            if check != "ok":  # a damaged ledger: the copy there is stays
                raise CorruptFileError(f"{self.path}: not backed up, it is damaged ({check})")
            os.replace(tmp, target)
        except sqlite3.DatabaseError as e:
            raise CorruptFileError(f"{self.path}: not backed up ({e})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return target


if TYPE_CHECKING:
    _: Backend = LocalBackend(".")
