"""The embedded backend: an SQLite ledger under ``results/`` (no account, no network).

WAL mode lets agents read while one writes; ``claim`` runs the engine inside one
``BEGIN IMMEDIATE`` transaction, so concurrent agents on a machine serialise on the
write lock and never receive the same grid point.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import engine
from srsweep.backends._base import RunRecord
from srsweep.backends._base import SweepRecord
from srsweep.backends._base import current
from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError
from srsweep.spec import SCRIPT

if TYPE_CHECKING:
    from srsweep.backends._base import Backend
    from srsweep.spec import Spec

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
    heartbeat_at REAL, attempt INTEGER NOT NULL DEFAULT 1, retry_of TEXT);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs(sweep_id, seq);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_run ON history(run_id, step);
"""


# columns added after the first release, in table order: older ledgers get them on open
_ADDED_COLUMNS = {
    "sweeps": [("remote", "TEXT"), ("reason", "TEXT")],
    "runs": [("heartbeat_at", "REAL"), ("attempt", "INTEGER NOT NULL DEFAULT 1"),
             ("retry_of", "TEXT")],
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


def new_id(n: int = 8) -> str:
    """A W&B-style id: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


class LocalBackend:
    """The SQLite ledger at ``root/srsweep.db``; read-only use creates nothing.

    Args:
        root: the results folder.
        lease_timeout: seconds without a heartbeat after which a running trial's agent
            counts as dead: the attempt is marked ``crashed`` (its metrics kept) and the
            trial is queued again. Default: ``SRSWEEP_LEASE_TIMEOUT`` or 120 s.
    """

    def __init__(self, root: str | Path, lease_timeout: float | None = None) -> None:
        self.root = Path(root)
        self.path = self.root / "srsweep.db"
        self._conn: sqlite3.Connection | None = None
        self._params: dict[str, dict[str, Any]] = {}
        if lease_timeout is None:
            lease_timeout = float(os.environ.get("SRSWEEP_LEASE_TIMEOUT", "120"))
        self.lease_timeout = lease_timeout

    @property
    def location(self) -> str:
        return str(self.path)

    def reopen(self) -> LocalBackend:
        return LocalBackend(self.root, lease_timeout=self.lease_timeout)

    # -- connection -------------------------------------------------------------------
    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        if self._conn is None:
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
            self._conn = conn
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._db(create=True)
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- sweeps -----------------------------------------------------------------------
    def create_sweep(self, spec: Spec, remote: str | None = None) -> str:
        """Register ``spec``; ``remote`` records its W&B server path when it lives there."""
        sweep_id = new_id()
        # a script runs in its spec's folder, wherever the agent is started from
        source = spec.source if spec.script is None else str(Path(spec.source).resolve())
        with self._tx() as db:
            db.execute(
                "INSERT INTO sweeps VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                (
                    sweep_id,
                    spec.name,
                    spec.kernel.name if spec.kernel is not None else SCRIPT,
                    json.dumps(spec.raw),
                    source,
                    "active",
                    secrets.randbits(31),
                    time.time(),
                    remote,
                ),
            )
        return sweep_id

    def sweeps(self) -> list[SweepRecord]:
        db = self._db()
        if db is None:
            return []
        rows = db.execute("SELECT * FROM sweeps ORDER BY created_at").fetchall()
        counts: dict[str, dict[str, int]] = {}
        for sid, state, n in db.execute(
            "SELECT sweep_id, state, COUNT(*) FROM runs GROUP BY sweep_id, state"
        ):
            counts.setdefault(sid, {})[state] = n
        return [self._sweep(r, counts.get(r[0], {})) for r in rows]

    def sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep ``sweep_id``; raises NotFoundError naming how to list them."""
        db = self._db()
        row = db.execute("SELECT * FROM sweeps WHERE id=?", (sweep_id,)).fetchone() if db else None
        if row is None:
            raise NotFoundError(
                f"unknown sweep id {sweep_id!r} in {self.path}; `srsweep ls` lists the sweeps"
            )
        counts = (
            dict(
                db.execute(
                    "SELECT state, COUNT(*) FROM runs WHERE sweep_id=? GROUP BY state", (sweep_id,)
                ).fetchall()
            )
            if db
            else {}
        )
        return self._sweep(row, counts)

    @staticmethod
    def _sweep(row: tuple[Any, ...], counts: dict[str, int]) -> SweepRecord:
        sid, name, kernel, spec, source, state, seed, created, remote, reason = row
        return SweepRecord(
            sid, name, kernel, json.loads(spec), source, state, seed, created, counts, remote,
            reason,
        )

    def set_sweep_state(self, sweep_id: str, state: str, reason: str | None = None) -> None:
        self.sweep(sweep_id)
        with self._tx() as db:
            db.execute("UPDATE sweeps SET state=?, reason=? WHERE id=?", (state, reason, sweep_id))

    # -- runs -------------------------------------------------------------------------
    def claim(self, sweep_id: str, agent: str) -> RunRecord | None:
        self.sweep(sweep_id)
        with self._tx() as db:
            sweep = self.sweep(sweep_id)  # re-read under the write lock
            if sweep.state != "active":
                return None
            target = (sweep.spec.get("metric") or {}).get("target") is not None
            if target and (hit := engine.reached_target(
                sweep.spec, current(self._engine_runs(sweep_id, with_summary=True))
            )):
                target_value = sweep.spec["metric"]["target"]
                self._end(sweep, f"metric.target {target_value:g} reached by run {hit[0]} "
                                 f"({hit[1]:.6g})")
                return None
            now = time.time()
            dead = db.execute(
                "SELECT id FROM runs WHERE sweep_id=? AND state='running' AND heartbeat_at < ?",
                (sweep_id, now - self.lease_timeout),
            )
            for (run_id,) in dead.fetchall():
                db.execute(
                    "UPDATE runs SET state='crashed', finished_at=?, error=? WHERE id=?",
                    (now, f"agent lost: no heartbeat for {self.lease_timeout:g}s", run_id),
                )
                self._requeue(run_id)
            queued = db.execute(
                "SELECT id FROM runs WHERE sweep_id=? AND state='queued' ORDER BY seq LIMIT 1",
                (sweep_id,),
            ).fetchone()
            if queued is not None:
                db.execute(
                    "UPDATE runs SET state='running', agent=?, started_at=?, "
                    "heartbeat_at=? WHERE id=?",
                    (agent, now, now, queued[0]),
                )
                return self.run(queued[0])
            runs = self._engine_runs(sweep_id, with_summary=sweep.spec["method"] == "bayes")
            params = engine.suggest(sweep.spec, current(runs), 1, seed=sweep.seed)
            if not params:
                if not any(r.state in ("running", "queued") for r in runs):
                    cap = sweep.spec.get("run_cap")
                    done = len(current(runs))
                    self._end(sweep, f"run_cap of {cap} reached" if cap is not None and done
                              >= cap else "every grid point has run")
                return None
            return self._insert(sweep_id, sweep.kernel, params[0], {}, agent, len(runs))

    def _end(self, sweep: SweepRecord, reason: str) -> None:
        """Mark ``sweep`` finished (inside a claim's transaction): no trial starts again
        until ``retry`` re-opens it."""
        assert self._conn is not None
        self._conn.execute(
            "UPDATE sweeps SET state='finished', reason=? WHERE id=?", (reason, sweep.id)
        )

    def _engine_runs(self, sweep_id: str, with_summary: bool) -> list[RunRecord]:
        """The little the engine needs of each run, cheaply: a claim on a large grid
        reads every run, so parameters (immutable) are parsed once per backend."""
        assert self._conn is not None
        out = []
        query = (
            "SELECT id, state, params, retry_of, summary FROM runs WHERE sweep_id=? ORDER BY seq"
            if with_summary
            else "SELECT id, state, params, retry_of, NULL FROM runs WHERE sweep_id=? ORDER BY seq"
        )
        for rid, state, params, retry_of, summary in self._conn.execute(query, (sweep_id,)):
            if rid not in self._params:
                self._params[rid] = json.loads(params)
            out.append(
                RunRecord(
                    rid,
                    sweep_id,
                    "",
                    "",
                    state,
                    self._params[rid],
                    {},
                    json.loads(summary) if summary else {},
                    retry_of=retry_of,
                )
            )
        return out

    def requeue(self, run_id: str) -> str | None:
        """Queue a new attempt of ``run_id``'s trial (same parameters); its id, or None
        when the run was already re-queued."""
        with self._tx():
            return self._requeue(run_id)

    def _requeue(self, run_id: str) -> str | None:
        assert self._conn is not None
        db = self._conn
        if db.execute("SELECT 1 FROM runs WHERE retry_of=?", (run_id,)).fetchone():
            return None
        row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise self._no_run(run_id)
        old = self._run(row)
        (seq,) = db.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM runs WHERE sweep_id IS ?", (old.sweep_id,)
        ).fetchone()
        new = new_id()
        db.execute(
            "INSERT INTO runs (id, sweep_id, seq, name, kernel, state, params, config,"
            " created_at, attempt, retry_of) VALUES (?,?,?,?,?,'queued',?,?,?,?,?)",
            (
                new,
                old.sweep_id,
                seq,
                old.name,
                old.kernel,
                json.dumps(old.params),
                json.dumps(old.config),
                time.time(),
                old.attempt + 1,
                run_id,
            ),
        )
        return new

    def retry(self, sweep_id: str, states: tuple[str, ...]) -> list[str]:
        """Queue a new attempt of every run of ``sweep_id`` in ``states`` not yet retried."""
        self.sweep(sweep_id)
        with self._tx() as db:
            marks = ",".join("?" * len(states))
            ids = [
                r
                for (r,) in db.execute(
                    f"SELECT id FROM runs WHERE sweep_id=? AND state IN ({marks}) ORDER BY seq",
                    (sweep_id, *states),
                )
            ]
            return [new for r in ids if (new := self._requeue(r)) is not None]

    def heartbeat(self, run_ids: list[str]) -> None:
        """Mark the agent of these runs alive now."""
        now = time.time()
        with self._tx() as db:
            for run_id in run_ids:
                self._touch(db, run_id, now)

    def _touch(self, db: sqlite3.Connection, run_id: str, now: float) -> None:
        """Mark ``run_id``'s agent alive at ``now``; NotFoundError when there is no such run."""
        if db.execute("UPDATE runs SET heartbeat_at=? WHERE id=?", (now, run_id)).rowcount == 0:
            raise self._no_run(run_id)

    def start_run(self, kernel: str, config: dict[str, Any], agent: str) -> RunRecord:
        """Register a standalone run (``srsweep run``), already running."""
        with self._tx() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM runs WHERE sweep_id IS NULL").fetchone()
            return self._insert(None, kernel, {}, config, agent, n)

    def _insert(
        self,
        sweep_id: str | None,
        kernel: str,
        params: dict[str, Any],
        config: dict[str, Any],
        agent: str,
        seq: int,
    ) -> RunRecord:
        assert self._conn is not None
        now = time.time()
        run = RunRecord(
            id=new_id(),
            sweep_id=sweep_id,
            name=f"{kernel}-{seq + 1:03d}",
            kernel=kernel,
            state="running",
            params=params,
            config=config,
            agent=agent,
            created_at=now,
            started_at=now,
        )
        self._conn.execute(
            "INSERT INTO runs (id, sweep_id, seq, name, kernel, state, params, config, agent,"
            " created_at, started_at, heartbeat_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run.id,
                sweep_id,
                seq,
                run.name,
                kernel,
                run.state,
                json.dumps(params),
                json.dumps(config),
                agent,
                now,
                now,
                now,
            ),
        )
        return run

    def log(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._tx() as db:
            self._touch(db, run_id, time.time())
            db.executemany(
                "INSERT INTO history VALUES (?,?,?)",
                [(run_id, int(r["_step"]), json.dumps(r)) for r in rows],
            )

    def finish(
        self,
        run_id: str,
        state: str,
        *,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        model_path: str | None = None,
    ) -> None:
        with self._tx() as db:
            done = db.execute(
                "UPDATE runs SET state=?, summary=?, error=?, model_path=?, finished_at=?,"
                " config=COALESCE(?, config) WHERE id=?",
                (
                    state,
                    json.dumps(summary or {}),
                    error,
                    model_path,
                    time.time(),
                    json.dumps(config) if config is not None else None,
                    run_id,
                ),
            )
            if done.rowcount == 0:
                raise self._no_run(run_id)

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        with self._tx() as db:
            set_ = db.execute("UPDATE runs SET config=? WHERE id=?", (json.dumps(config), run_id))
            if set_.rowcount == 0:
                raise self._no_run(run_id)

    def run(self, run_id: str) -> RunRecord:
        db = self._db()
        row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone() if db else None
        if row is None:
            raise self._no_run(run_id)
        return self._with_history([self._run(row)])[0]

    def _no_run(self, run_id: str) -> NotFoundError:
        return NotFoundError(f"unknown run id {run_id!r} in {self.path}")

    def runs(self, sweep_id: str | None, *, history: bool = True) -> list[RunRecord]:
        db = self._db()
        if db is None:
            return []
        where = "sweep_id IS NULL" if sweep_id is None else "sweep_id=?"
        args = () if sweep_id is None else (sweep_id,)
        runs = [
            self._run(r) for r in db.execute(f"SELECT * FROM runs WHERE {where} ORDER BY seq", args)
        ]
        return self._with_history(runs) if history else runs

    def _with_history(self, runs: list[RunRecord]) -> list[RunRecord]:
        db = self._db()
        by_id = {r.id: r for r in runs}
        if db is None or not runs:
            return runs
        ids = list(by_id)
        for i in range(0, len(ids), 500):  # SQLite caps bound parameters
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, data in db.execute(
                f"SELECT run_id, data FROM history WHERE run_id IN ({marks}) "
                "ORDER BY run_id, step, rowid",
                chunk,
            ):
                by_id[run_id].history.append(json.loads(data))
        return runs

    @staticmethod
    def _run(row: tuple[Any, ...]) -> RunRecord:
        (
            rid,
            sweep_id,
            _seq,
            name,
            kernel,
            state,
            params,
            config,
            summary,
            error,
            model_path,
            agent,
            created,
            started,
            finished,
            _heartbeat,
            attempt,
            retry_of,
        ) = row
        return RunRecord(
            rid,
            sweep_id,
            name,
            kernel,
            state,
            json.loads(params),
            json.loads(config),
            json.loads(summary),
            [],
            error,
            model_path,
            agent,
            created,
            started,
            finished,
            attempt,
            retry_of,
        )


if TYPE_CHECKING:
    _: Backend = LocalBackend(".")
