"""The ledger on a PostgreSQL server (``--ledger postgresql://user@host:port/db``), for
clusters whose nodes share no reliable file system or reach no W&B server.

The same ``SqlLedger`` logic as the SQLite ledger, through psycopg 3. A claim locks its
sweep's row (``SELECT … FOR UPDATE``), so claims of one sweep serialise while other
sweeps, heartbeats and logging go on; trials of different agents never collide. The
schema is created (and later columns added) on first use, under an advisory lock so
that many agents starting at once do not race.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from typing import Any

from srsweep.backends.sql import SqlLedger
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.backends._base import Backend

__all__ = ["PostgresBackend", "SCHEMES"]

SCHEMES = ("postgresql://", "postgres://")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sweeps (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, kernel TEXT NOT NULL, spec TEXT NOT NULL,
        source TEXT NOT NULL, state TEXT NOT NULL, seed BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, remote TEXT, reason TEXT)""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, sweep_id TEXT REFERENCES sweeps(id), seq BIGINT NOT NULL,
        name TEXT NOT NULL, kernel TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,
        config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}', error TEXT, model_path TEXT,
        agent TEXT, created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION, heartbeat_at DOUBLE PRECISION,
        attempt INTEGER NOT NULL DEFAULT 1, retry_of TEXT, crashes INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs(sweep_id, seq)",
    "CREATE INDEX IF NOT EXISTS runs_by_retry ON runs(retry_of)",
    """CREATE TABLE IF NOT EXISTS history (
        n BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
        step BIGINT NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS history_by_run ON history(run_id, step)",
    """CREATE TABLE IF NOT EXISTS history_columns (
        run_id TEXT NOT NULL REFERENCES runs(id), key TEXT NOT NULL, pos INTEGER NOT NULL,
        kind TEXT NOT NULL, n BIGINT NOT NULL, present BYTEA, data BYTEA NOT NULL, last TEXT,
        PRIMARY KEY (run_id, key))""",
]
_SCHEMA_LOCK = 0x5253_5357  # pg_advisory_lock key: "SRSW"
# what _SCHEMA creates: when all of it exists an open skips the DDL and its lock. A
# later "ADD COLUMN IF NOT EXISTS c" names no relation, so with one the DDL always runs.
_CREATES = tuple(re.findall(r"IF NOT EXISTS (\w+)", " ".join(_SCHEMA)))


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class PostgresBackend(SqlLedger):
    """The ledger in database ``url`` (``postgresql://user[:password]@host:port/db``).

    Args:
        url: a libpq connection URL.
        lease_timeout, max_retries: as for ``SqlLedger``.
    """

    paramstyle = "%s"

    def __init__(
        self, url: str, lease_timeout: float | None = None, max_retries: int | None = None
    ) -> None:
        super().__init__(lease_timeout, max_retries)
        if not url.startswith(SCHEMES):
            raise UsageError(f"--ledger {url!r}: expected postgresql://USER@HOST:PORT/DB")
        self.url = url
        self._reached = False  # a connection opened once: failing to open again is an outage

    @property
    def location(self) -> str:
        return _redacted(self.url)

    def reopen(self) -> PostgresBackend:
        return PostgresBackend(self.url, self.lease_timeout, self.max_retries)

    def _connect(self, create: bool) -> Any:
        try:
            import psycopg  # an optional dependency: srsweep[postgres]
        except ImportError:
            raise UsageError(
                f"--ledger {self.location}: a PostgreSQL ledger needs psycopg; install it "
                "with pip install 'srsweep[postgres]'"
            ) from None
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            if self._reached:  # (an OperationalError: retried as a lost connection)
                raise
            raise SrsweepError(
                f"cannot reach the PostgreSQL ledger {self.location}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
            ) from None
        if not self._schema_ready(conn) or self._uncompacted(conn):
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                self._compact_ended(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        # (else the usual open: two quick reads, no lock, no DDL)
        self._reached = True
        return conn

    @staticmethod
    def _schema_ready(conn: Any) -> bool:
        """Whether every table and index that ``_SCHEMA`` creates exists already."""
        (ready,) = conn.execute(
            "SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) name",
            (list(_CREATES),),
        ).fetchone()
        return bool(ready)

    def _x_blobs(self, db: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        # binary results: bytea as its bytes, not hex text twice their size to decode
        return db.execute(self._q(sql), tuple(args), binary=True)

    def _disconnected(self, exc: BaseException) -> bool:
        import psycopg

        # a closed connection, a server shutting down or starting up, a network gone;
        # a query's own failure (a constraint, bad SQL) is a ProgrammingError/IntegrityError
        return isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable
        )

    def _transaction_id(self, db: Any) -> Any:
        return db.execute("SELECT pg_current_xact_id()::text").fetchone()[0]

    def _committed(self, db: Any, txid: Any) -> bool | None:
        # https://www.postgresql.org/docs/current/functions-info.html (pg_xact_status):
        # made for a client whose connection broke during COMMIT
        (status,) = db.execute("SELECT pg_xact_status(%s::xid8)", (txid,)).fetchone()
        if status is None:  # older than the server's commit log keeps: it cannot say
            raise SrsweepError(
                f"the ledger {self.location} cannot tell whether transaction {txid} "
                "committed after the connection was lost; stopping rather than risk "
                "writing it twice"
            )
        return None if status == "in progress" else status == "committed"

    def _lock_sweep(self, db: Any, sweep_id: str) -> None:
        db.execute("SELECT id FROM sweeps WHERE id=%s FOR UPDATE", (sweep_id,))


if TYPE_CHECKING:
    _: Backend = PostgresBackend("postgresql://localhost/srsweep")
