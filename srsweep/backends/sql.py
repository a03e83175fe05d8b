"""The sweep ledger in SQL, written once for every database that holds one.

``SqlLedger`` implements the ``Backend`` protocol over a DB-API connection; a subclass
says how to connect, how a write transaction begins, and how the claim is serialised
per sweep (SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock; PostgreSQL:
``SELECT … FOR UPDATE`` on the sweep's row). Queries are written with ``?`` and
translated once for drivers that take ``%s``.

History: a running attempt's log calls are JSON rows (``history``); when the attempt
ends, whichever way (``finish``, or the reaper marking it crashed or failed), its rows
are compacted into typed columns (``history_columns``, see ``srsweep.backends.columns``) in the same
transaction and deleted. Reads take either, so a live run reads from its rows and a
ledger written before the columns existed reads as it did; its ended runs are
compacted the first time it is opened for writing.

Fencing: every attempt of a trial is a row of its own, and a lease that ran out turns
its row ``crashed`` and queues a new row. The ledger accepts writes about a trial
(log, heartbeat, finish) only while its row is ``running``, so an agent whose lease
was taken over cannot write over the new attempt: it gets ``LeaseLostError``.

A lost connection (a server ledger restarted, its network gone): every public call is
retried whole, with backoff, for ``SRSWEEP_DB_RETRY`` seconds (default 60), and then
``LedgerUnreachableError`` stops the agent. A transaction that failed before its COMMIT
was rolled back by the server and is simply run again; one whose COMMIT went out but
whose answer never came is looked up on the server once it is back (``_committed``),
so that it is neither lost nor applied twice (history rows logged twice).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import string
import sys
import time
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Concatenate
from typing import ParamSpec
from typing import TypeVar

from numpy.typing import NDArray

from srsweep import engine
from srsweep.backends._base import RunRecord
from srsweep.backends._base import SweepRecord
from srsweep.backends._base import current
from srsweep.backends.columns import decode
from srsweep.backends.columns import encode
from srsweep.backends.columns import from_rows
from srsweep.backends.columns import last_of
from srsweep.backends.columns import to_rows
from srsweep.errors import LeaseLostError
from srsweep.errors import LedgerUnreachableError
from srsweep.errors import NotFoundError
from srsweep.spec import SCRIPT
from srsweep.spec import Spec

__all__ = ["SqlLedger", "new_id", "RUN_COLUMNS", "SWEEP_COLUMNS", "LAST_LOGGED"]

# column order of the two main tables, as every query reads them
SWEEP_COLUMNS = "id, name, kernel, spec, source, state, seed, created_at, remote, reason"
RUN_COLUMNS = (
    "id, sweep_id, seq, name, kernel, state, params, config, summary, error, model_path, agent,"
    " created_at, started_at, finished_at, heartbeat_at, attempt, retry_of, crashes"
)
DEFAULT_LEASE = 120.0  # seconds without a heartbeat before a running trial is lost
DEFAULT_RETRIES = 3  # crashed or lost attempts of one trial before it counts as failed
COLUMN_FIELDS = "run_id, key, pos, kind, n, present, data, last"
_CHUNK = 500  # ids per ``IN (...)``: drivers cap bound parameters
_ENDED = (  # runs that have ended with history rows not yet compacted
    "SELECT id FROM runs r WHERE state NOT IN ('running', 'queued') AND EXISTS "
    "(SELECT 1 FROM history h WHERE h.run_id = r.id)"
)
# each run's last logged values; SQLite answers it from an index (local.py's schema)
LAST_LOGGED = (
    "SELECT run_id, key, last FROM history_columns "
    "WHERE run_id IN ({marks}) AND key <> '_step' ORDER BY run_id, pos"
)
DEFAULT_DB_RETRY = 60.0  # seconds a lost connection is retried before the agent stops
BACKOFF = (0.5, 8.0)  # the first wait between reconnections, doubling up to the second

_P = ParamSpec("_P")
_T = TypeVar("_T")
_L = TypeVar("_L", bound="SqlLedger")


def new_id(n: int = 8) -> str:
    """A W&B-style id: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class _Retry(Exception):
    """A transaction the server did not commit (its connection was lost): run it again."""


class _Outage:
    """One spell without a connection: says so once, waits with backoff between
    reconnections, and gives up after ``SRSWEEP_DB_RETRY`` seconds."""

    def __init__(self, ledger: SqlLedger, first: BaseException) -> None:
        self.ledger, self.window = ledger, _env_float("SRSWEEP_DB_RETRY", DEFAULT_DB_RETRY)
        self.deadline = time.monotonic() + self.window
        self.pause = BACKOFF[0]
        print(
            f"ledger connection lost ({_brief(first)}), retrying for up to {self.window:g} s",
            file=sys.stderr,
            flush=True,
        )

    def reconnect(self, cause: BaseException) -> None:
        """Drop the broken connection and wait until a new one opens; raises
        LedgerUnreachableError once the window has passed."""
        self.ledger._drop()
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise LedgerUnreachableError(
                    f"the ledger {self.ledger.location} stayed unreachable for "
                    f"{self.window:g} s (SRSWEEP_DB_RETRY; last error: {_brief(cause)}); "
                    "stopping. Trials this agent held stay running in the ledger and are "
                    "queued again once their lease runs out"
                ) from None
            time.sleep(min(self.pause, left))
            self.pause = min(self.pause * 2, BACKOFF[1])
            try:
                self.ledger._db(create=True)
                return
            except Exception as e:
                if not self.ledger._disconnected(e):
                    raise
                cause = e


def _brief(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _retried(method: Callable[Concatenate[_L, _P], _T]) -> Callable[Concatenate[_L, _P], _T]:
    """Run a ledger call again, whole, after a lost connection (``_Outage``). A call
    made inside another (``claim`` reads ``sweep``) leaves the retry to the outer one."""

    @functools.wraps(method)
    def call(self: _L, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._calls:
            return method(self, *args, **kwargs)
        try:
            while True:
                self._calls += 1
                try:
                    return method(self, *args, **kwargs)
                except _Retry:  # reconnected already; the server rolled the call back
                    pass
                except Exception as e:
                    if not self._disconnected(e):
                        raise
                    self._outage = self._outage or _Outage(self, e)
                    self._outage.reconnect(e)
                finally:
                    self._calls -= 1
        finally:
            self._outage = None  # the next loss is a new outage

    return call


class SqlLedger:
    """The ledger's logic over a SQL database; subclasses connect.

    Args:
        lease_timeout: seconds without a heartbeat after which a running trial's agent
            counts as dead: the attempt is marked ``crashed`` (its metrics kept) and the
            trial is queued again. Default: ``SRSWEEP_LEASE_TIMEOUT`` or 120 s.
        max_retries: crashed attempts of one trial after which it is ``failed``
            ("crashed N times") instead of queued again; ``retry`` resets the count.
            Default: ``SRSWEEP_MAX_RETRIES`` or 3.
    """

    paramstyle = "?"  # the driver's placeholder
    history_order = "n"  # the column that keeps a run's history rows in logging order

    def __init__(self, lease_timeout: float | None = None, max_retries: int | None = None) -> None:
        self.lease_timeout = (
            _env_float("SRSWEEP_LEASE_TIMEOUT", DEFAULT_LEASE)
            if lease_timeout is None
            else lease_timeout
        )
        self.max_retries = (
            int(_env_float("SRSWEEP_MAX_RETRIES", DEFAULT_RETRIES))
            if max_retries is None
            else max_retries
        )
        self._conn: Any = None
        self._params: dict[str, dict[str, Any]] = {}
        self._calls = 0  # ledger calls in progress (a retry covers the outermost)
        self._outage: _Outage | None = None  # the spell without a connection, if any

    # -- what a subclass provides -------------------------------------------------------
    @property
    def location(self) -> str:
        raise NotImplementedError

    def reopen(self) -> SqlLedger:
        raise NotImplementedError

    def _connect(self, create: bool) -> Any:
        """A new connection with the schema in place; None when ``create`` is False and
        there is no ledger yet."""
        raise NotImplementedError

    def _begin(self, db: Any) -> None:
        """Start a write transaction."""
        db.execute("BEGIN")

    def _lock_sweep(self, db: Any, sweep_id: str) -> None:
        """Serialise claims of one sweep until the transaction ends."""

    def _disconnected(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the driver saying the connection is gone (then the call is
        retried); an embedded database has none to lose."""
        return False

    def _transaction_id(self, db: Any) -> Any:
        """The open transaction's id on the server, to ask later whether it committed;
        None where a lost COMMIT cannot happen."""
        return None

    def _committed(self, db: Any, txid: Any) -> bool | None:
        """Whether transaction ``txid`` committed; None while the server cannot tell yet."""
        raise NotImplementedError

    # -- plumbing -----------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql if self.paramstyle == "?" else sql.replace("?", "%s")

    def _x(self, db: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return db.execute(self._q(sql), tuple(args))

    def _x_blobs(self, db: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        """``_x`` for a query whose rows carry history blobs; a driver that can receive
        them as raw bytes instead of text (PostgreSQL's hex) is asked to."""
        return self._x(db, sql, args)

    def _db(self, create: bool = False) -> Any:
        if self._conn is None:
            self._conn = self._connect(create)
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction. Whatever is raised after BEGIN, at the COMMIT too (a
        second signal's KeyboardInterrupt in a write from training code), rolls it back,
        so the connection is never left inside a transaction that the next write (the
        trial's outcome) could not begin."""
        db = self._db(create=True)
        self._begin(db)
        txid = self._transaction_id(db)
        try:
            yield db
        except BaseException:
            with contextlib.suppress(Exception):  # (the connection may be gone)
                db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except BaseException as e:
            if txid is None or not self._disconnected(e):
                with contextlib.suppress(Exception):  # none open: it was raised after COMMIT
                    db.execute("ROLLBACK")
                raise
            self._settle(txid, e)

    def _settle(self, txid: Any, lost: BaseException) -> None:
        """A COMMIT sent on a connection that broke: reconnect and ask the server. Committed:
        return, the call's result stands; not committed: ``_Retry`` the call whole."""
        outage = self._outage = self._outage or _Outage(self, lost)
        while True:
            outage.reconnect(lost)
            try:
                done = self._committed(self._db(), txid)
            except Exception as e:
                if not self._disconnected(e):
                    raise
                lost = e
                continue
            if done is not None:
                break
        if not done:
            raise _Retry() from lost

    def _drop(self) -> None:
        """Forget a broken connection (closing it, if the driver still can)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- sweeps -------------------------------------------------------------------------
    @_retried
    def create_sweep(self, spec: Spec, remote: str | None = None) -> str:
        """Register ``spec``; ``remote`` records its W&B server path when it lives there."""
        sweep_id = new_id()
        with self._tx() as db:
            self._x(
                db,
                f"INSERT INTO sweeps ({SWEEP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                (
                    sweep_id,
                    spec.name,
                    spec.kernel.name if spec.kernel is not None else SCRIPT,
                    json.dumps(spec.raw),
                    # a script runs in its spec's folder, wherever the agent starts
                    spec.source if spec.kernel is not None else str(Path(spec.source).resolve()),
                    "active",
                    secrets.randbits(31),
                    time.time(),
                    remote,
                ),
            )
        return sweep_id

    @_retried
    def sweeps(self) -> list[SweepRecord]:
        db = self._db()
        if db is None:
            return []
        rows = self._x(db, f"SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY created_at").fetchall()
        counts: dict[str, dict[str, int]] = {}
        for sid, state, n in self._x(
            db, "SELECT sweep_id, state, COUNT(*) FROM runs GROUP BY sweep_id, state"
        ).fetchall():
            if sid is not None:
                counts.setdefault(sid, {})[state] = n
        return [self._sweep(r, counts.get(r[0], {})) for r in rows]

    @_retried
    def sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep ``sweep_id``; raises NotFoundError naming how to list them."""
        db = self._db()
        row = (
            self._x(db, f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
            if db is not None
            else None
        )
        if row is None:
            raise NotFoundError(
                f"unknown sweep id {sweep_id!r} in {self.location}; `srsweep ls` lists the sweeps"
            )
        counts = dict(
            self._x(
                db, "SELECT state, COUNT(*) FROM runs WHERE sweep_id=? GROUP BY state", (sweep_id,)
            ).fetchall()
        )
        return self._sweep(row, counts)

    @staticmethod
    def _sweep(row: tuple[Any, ...], counts: dict[str, int]) -> SweepRecord:
        sid, name, kernel, spec, source, state, seed, created, remote, reason = row
        return SweepRecord(
            sid,
            name,
            kernel,
            json.loads(spec),
            source,
            state,
            int(seed),
            float(created),
            counts,
            remote,
            reason,
        )

    @_retried
    def set_sweep_state(self, sweep_id: str, state: str, reason: str | None = None) -> None:
        self.sweep(sweep_id)
        with self._tx() as db:
            self._x(db, "UPDATE sweeps SET state=?, reason=? WHERE id=?", (state, reason, sweep_id))

    # -- trials -------------------------------------------------------------------------
    @_retried
    def claim(self, sweep_id: str, agent: str) -> RunRecord | None:
        got = self._claim(sweep_id, agent, 1, None, 1)
        return got[0] if got else None

    @_retried
    def claim_pack(
        self,
        sweep_id: str,
        agent: str,
        n: int,
        *,
        key: Callable[[dict[str, Any]], Hashable],
        candidates: int,
    ) -> list[RunRecord]:
        return self._claim(sweep_id, agent, n, key, candidates)

    def _claim(
        self,
        sweep_id: str,
        agent: str,
        n: int,
        key: Callable[[dict[str, Any]], Hashable] | None,
        candidates: int,
    ) -> list[RunRecord]:
        """Up to ``n`` trials in one transaction: queued re-runs, then suggestions (those
        that share ``key`` first, of up to ``candidates``; None: the engine's order)."""
        self.sweep(sweep_id)
        with self._tx() as db:
            self._lock_sweep(db, sweep_id)
            sweep = self.sweep(sweep_id)  # re-read under the lock
            if sweep.state != "active":
                return []
            metric = sweep.spec.get("metric") or {}
            if metric.get("target") is not None:
                hit = engine.reached_target(
                    sweep.spec, current(self._engine_runs(db, sweep_id, with_summary=True))
                )
                if hit is not None:
                    self._end(
                        db,
                        sweep_id,
                        f"metric.target {metric['target']:g} reached by run "
                        f"{hit[0]} ({hit[1]:.6g})",
                    )
                    return []
            now = time.time()
            self._reap(db, now, "sweep_id=?", (sweep_id,))
            claimed = []
            for (run_id,) in self._x(
                db,
                "SELECT id FROM runs WHERE sweep_id=? AND state='queued' ORDER BY seq LIMIT ?",
                (sweep_id, n),
            ).fetchall():
                self._x(
                    db,
                    "UPDATE runs SET state='running', agent=?, started_at=?, heartbeat_at=? "
                    "WHERE id=?",
                    (agent, now, now, run_id),
                )
                claimed.append(self._run_in(db, run_id))
            if len(claimed) == n:
                return claimed
            runs = self._engine_runs(db, sweep_id, with_summary=sweep.spec["method"] == "bayes")
            if key is None:
                params = engine.suggest(
                    sweep.spec, current(runs), n - len(claimed), seed=sweep.seed
                )
            else:
                params = engine.suggest_packed(
                    sweep.spec,
                    current(runs),
                    n - len(claimed),
                    seed=sweep.seed,
                    key=key,
                    candidates=candidates,
                    first=[key(r.params) for r in claimed],
                )
            if not params and not claimed:
                if not any(r.state in ("running", "queued") for r in runs):
                    cap, done = sweep.spec.get("run_cap"), len(current(runs))
                    why = (
                        f"run_cap of {cap} reached"
                        if cap is not None and done >= cap
                        else "every grid point has run"
                    )
                    self._end(db, sweep_id, why)
                return []
            return claimed + [
                self._insert(db, sweep_id, sweep.kernel, p, {}, agent, len(runs) + i)
                for i, p in enumerate(params)
            ]

    def _end(self, db: Any, sweep_id: str, reason: str) -> None:
        """Mark the sweep finished (inside a claim): no trial starts again until
        ``retry`` re-opens it."""
        self._x(db, "UPDATE sweeps SET state='finished', reason=? WHERE id=?", (reason, sweep_id))

    def _reap(self, db: Any, now: float, where: str, args: tuple[Any, ...]) -> None:
        """Running attempts whose lease ran out: ``crashed``, and queued again unless
        they crashed ``max_retries`` times already (then the trial is ``failed``)."""
        dead = self._x(
            db,
            f"SELECT id, crashes, sweep_id FROM runs WHERE {where} AND state='running' "
            "AND heartbeat_at < ?",
            (*args, now - self.lease_timeout),
        ).fetchall()
        lost = f"agent lost: no heartbeat for {self.lease_timeout:g}s"
        for run_id, crashes, sweep_id in dead:
            if sweep_id is not None and crashes + 1 < self.max_retries:
                self._x(
                    db,
                    "UPDATE runs SET state='crashed', finished_at=?, error=? WHERE id=?",
                    (now, lost, run_id),
                )
                self._requeue(db, run_id, crashes=crashes + 1)
            else:  # a standalone run has nothing to re-run it; a crash loop ends here
                error = lost if sweep_id is None else f"crashed {crashes + 1} times: {lost}"
                self._x(
                    db,
                    "UPDATE runs SET state=?, finished_at=?, error=? WHERE id=?",
                    ("crashed" if sweep_id is None else "failed", now, error, run_id),
                )
            self._compact(db, run_id)

    def _engine_runs(self, db: Any, sweep_id: str, with_summary: bool) -> list[RunRecord]:
        """The little the engine needs of each run, cheaply: a claim on a large grid
        reads every run, so parameters (immutable) are parsed once per backend."""
        summary = "summary" if with_summary else "NULL"
        out = []
        for rid, state, params, retry_of, summ in self._x(
            db,
            f"SELECT id, state, params, retry_of, {summary} FROM runs WHERE sweep_id=? "
            "ORDER BY seq",
            (sweep_id,),
        ).fetchall():
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
                    json.loads(summ) if summ else {},
                    retry_of=retry_of,
                )
            )
        return out

    @_retried
    def requeue(self, run_id: str) -> str | None:
        """Queue a new attempt of ``run_id``'s trial (same parameters); its id, or None
        when the run was already re-queued."""
        with self._tx() as db:
            return self._requeue(db, run_id)

    def _requeue(self, db: Any, run_id: str, crashes: int | None = None) -> str | None:
        if self._x(db, "SELECT 1 FROM runs WHERE retry_of=?", (run_id,)).fetchone():
            return None
        old = self._row(db, run_id)
        seq = self._next_seq(db, old.sweep_id)
        new = new_id()
        (kept,) = self._x(db, "SELECT crashes FROM runs WHERE id=?", (run_id,)).fetchone()
        self._x(
            db,
            "INSERT INTO runs (id, sweep_id, seq, name, kernel, state, params, config, summary,"
            " created_at, attempt, retry_of, crashes) VALUES (?,?,?,?,?,'queued',?,?,'{}',?,?,?,?)",
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
                kept if crashes is None else crashes,
            ),
        )
        return new

    def _next_seq(self, db: Any, sweep_id: str | None) -> int:
        where = "sweep_id IS NULL" if sweep_id is None else "sweep_id=?"
        args = () if sweep_id is None else (sweep_id,)
        (seq,) = self._x(
            db, f"SELECT COALESCE(MAX(seq), -1) + 1 FROM runs WHERE {where}", args
        ).fetchone()
        return int(seq)

    @_retried
    def retry(self, sweep_id: str, states: tuple[str, ...]) -> list[str]:
        """Queue a new attempt of every run of ``sweep_id`` in ``states`` not yet retried;
        a retried trial's crash count starts again."""
        self.sweep(sweep_id)
        with self._tx() as db:
            marks = ",".join("?" * len(states))
            ids = [
                r
                for (r,) in self._x(
                    db,
                    f"SELECT id FROM runs WHERE sweep_id=? AND state IN ({marks}) ORDER BY seq",
                    (sweep_id, *states),
                ).fetchall()
            ]
            return [new for r in ids if (new := self._requeue(db, r, crashes=0)) is not None]

    @_retried
    def heartbeat(self, run_ids: list[str]) -> None:
        """Mark the agent of these runs alive now; raises LeaseLostError naming the runs
        whose lease was taken over (no longer ``running``)."""
        now = time.time()
        with self._tx() as db:
            lost = [r for r in run_ids if not self._renew(db, r, now)]
        if lost:
            raise self._lost(lost)

    def _renew(self, db: Any, run_id: str, now: float) -> bool:
        """Renew ``run_id``'s lease; False when it is not running (taken over, ended)."""
        cur = self._x(
            db, "UPDATE runs SET heartbeat_at=? WHERE id=? AND state='running'", (now, run_id)
        )
        if cur.rowcount:
            return True
        self._row(db, run_id)  # NotFoundError for an unknown id
        return False

    def _lost(self, run_ids: list[str]) -> LeaseLostError:
        return LeaseLostError(
            f"lease lost for run(s) {', '.join(run_ids)}: the ledger gave the trial to "
            f"another agent after {self.lease_timeout:g}s without a heartbeat "
            "(raise SRSWEEP_LEASE_TIMEOUT on a slow shared file system)"
        )

    @_retried
    def start_run(self, kernel: str, config: dict[str, Any], agent: str) -> RunRecord:
        """Register a standalone run (``srsweep run``), already running."""
        with self._tx() as db:
            self._reap(db, time.time(), "sweep_id IS NULL", ())
            return self._insert(db, None, kernel, {}, config, agent, self._next_seq(db, None))

    def _insert(
        self,
        db: Any,
        sweep_id: str | None,
        kernel: str,
        params: dict[str, Any],
        config: dict[str, Any],
        agent: str,
        seq: int,
    ) -> RunRecord:
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
        self._x(
            db,
            "INSERT INTO runs (id, sweep_id, seq, name, kernel, state, params, config, summary,"
            " agent, created_at, started_at, heartbeat_at) VALUES (?,?,?,?,?,?,?,?,'{}',?,?,?,?)",
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

    @_retried
    def log(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append history rows (each with ``_step``); renews the lease."""
        if not rows:
            return
        with self._tx() as db:
            if not self._renew(db, run_id, time.time()):
                raise self._lost([run_id])
            db.cursor().executemany(
                self._q("INSERT INTO history (run_id, step, data) VALUES (?,?,?)"),
                [(run_id, int(r["_step"]), json.dumps(r)) for r in rows],
            )

    @_retried
    def finish(
        self,
        run_id: str,
        state: str,
        *,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        model_path: str | None = None,
        requeue: bool = False,
    ) -> None:
        """Record a running attempt's outcome (and with ``requeue`` its next attempt, in
        the same transaction); LeaseLostError when it is not running."""
        with self._tx() as db:
            cur = self._x(
                db,
                "UPDATE runs SET state=?, summary=?, error=?, model_path=?, finished_at=?,"
                " config=COALESCE(?, config) WHERE id=? AND state='running'",
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
            if not cur.rowcount:
                old = self._row(db, run_id)
                raise LeaseLostError(
                    f"run {run_id} is {old.state}, not running: its outcome ({state}) was "
                    "not recorded"
                    + (" (its lease was taken over)" if old.state == "crashed" else "")
                )
            self._compact(db, run_id)
            if requeue:
                self._requeue(db, run_id)

    # -- columnar history -------------------------------------------------------------
    def _compact(self, db: Any, run_id: str) -> None:
        """Turn ``run_id``'s JSON rows into columns (inside the caller's transaction);
        a run compacted before keeps its columns, the rows logged since added to them."""
        rows = [
            json.loads(data)
            for (data,) in self._x(
                db,
                f"SELECT data FROM history WHERE run_id=? ORDER BY step, {self.history_order}",
                (run_id,),
            ).fetchall()
        ]
        if not rows:
            return
        rows = self._column_rows(db, [run_id]).get(run_id, []) + rows
        self._x(db, "DELETE FROM history_columns WHERE run_id=?", (run_id,))
        db.cursor().executemany(
            self._q(f"INSERT INTO history_columns ({COLUMN_FIELDS}) VALUES (?,?,?,?,?,?,?,?)"),
            [
                (run_id, c.key, pos, c.kind, len(rows), c.present, c.data, c.last)
                for pos, c in enumerate(encode(rows))
            ],
        )
        self._x(db, "DELETE FROM history WHERE run_id=?", (run_id,))

    def _uncompacted(self, db: Any) -> bool:
        """Whether a run that is no longer running or queued still has JSON rows."""
        return self._x(db, _ENDED + " LIMIT 1").fetchone() is not None

    def _compact_ended(self, db: Any) -> None:
        """Compact the rows of every run that is no longer running or queued: what a
        ledger written before the columns existed holds (run once, on a writable open)."""
        if not self._uncompacted(db):
            return
        self._begin(db)
        try:
            for (run_id,) in self._x(db, _ENDED).fetchall():
                self._compact(db, run_id)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _column_rows(self, db: Any, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The compacted history of these runs, as the rows it was logged as."""
        found: dict[str, tuple[int, list[tuple[str, str, bytes | None, bytes]]]] = {}
        for chunk, marks in _chunks(run_ids):
            for run_id, key, kind, n, present, data in self._x_blobs(
                db,
                "SELECT run_id, key, kind, n, present, data FROM history_columns "
                f"WHERE run_id IN ({marks}) ORDER BY run_id, pos",
                chunk,
            ).fetchall():
                found.setdefault(run_id, (int(n), []))[1].append(
                    (key, kind, _bytes(present), bytes(data))
                )
        return {rid: to_rows(n, cols) for rid, (n, cols) in found.items()}

    def _json_rows(self, db: Any, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The JSON rows of these runs (live ones, or not compacted yet), in logging order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for chunk, marks in _chunks(run_ids):
            for run_id, data in self._x(
                db,
                f"SELECT run_id, data FROM history WHERE run_id IN ({marks}) "
                f"ORDER BY run_id, step, {self.history_order}",
                chunk,
            ).fetchall():
                out.setdefault(run_id, []).append(json.loads(data))
        return out

    @_retried
    def history_columns(
        self, run_ids: list[str], keys: list[str] | None = None
    ) -> dict[str, dict[str, NDArray[Any]]]:
        """Each run's history as one array per key (``columns.decode``), ``_step``
        included; only ``keys`` (and ``_step``) when given. Runs that logged nothing
        map to ``{}``; a key a run never logged is not in its dict."""
        db = self._db()
        out: dict[str, dict[str, NDArray[Any]]] = {rid: {} for rid in run_ids}
        if db is None:
            return out
        pick = ""  # no key filter
        wanted: list[str] = []
        if keys is not None:
            wanted = list(dict.fromkeys(["_step", *keys]))
            pick = f" AND key IN ({','.join('?' * len(wanted))})"
        for chunk, marks in _chunks(run_ids, max(1, _CHUNK - len(wanted))):
            for run_id, key, kind, n, present, data in self._x_blobs(
                db,
                "SELECT run_id, key, kind, n, present, data FROM history_columns "
                f"WHERE run_id IN ({marks}){pick} ORDER BY run_id, pos",
                (*chunk, *wanted),
            ):  # row by row: a chunk's blobs are not all held twice
                out[run_id][key] = decode(kind, int(n), _bytes(present), bytes(data))
        for run_id, rows in self._json_rows(db, run_ids).items():
            out[run_id] = from_rows(rows, keys)
        return out

    @_retried
    def last_logged(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each run's last logged value per key (but ``_step``) that is not None."""
        db = self._db()
        out: dict[str, dict[str, Any]] = {rid: {} for rid in run_ids}
        if db is None:
            return out
        for chunk, marks in _chunks(run_ids):
            for run_id, key, last in self._x(db, LAST_LOGGED.format(marks=marks), chunk).fetchall():
                if last is not None:
                    out[run_id][key] = json.loads(last)
        for run_id, rows in self._json_rows(db, run_ids).items():
            out[run_id] = last_of(rows)
        return out

    @_retried
    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        with self._tx() as db:
            self._row(db, run_id)
            self._x(db, "UPDATE runs SET config=? WHERE id=?", (json.dumps(config), run_id))

    # -- moving a study ---------------------------------------------------------------
    def copy_to(self, dst: SqlLedger, sweep_ids: list[str] | None = None) -> dict[str, int]:
        """Copy sweeps, their runs and histories (all, or ``sweep_ids``; standalone runs
        with all) into ``dst``, idempotently: what ``dst`` has already is left as it is
        unless the run changed here since (its state, summary, history), then replaced.

        Returns:
            Counts: ``sweeps`` and ``runs`` added, ``updated`` runs, ``rows`` of history.
        """
        db = self._db()
        counts = {"sweeps": 0, "runs": 0, "updated": 0, "rows": 0}
        if db is None:
            return counts
        if sweep_ids is None:
            sweeps = self._x(db, f"SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY created_at")
            runs = self._x(db, f"SELECT {RUN_COLUMNS} FROM runs ORDER BY sweep_id, seq")
        else:
            for sid in sweep_ids:
                self.sweep(sid)  # NotFoundError before anything is written
            marks = ",".join("?" * len(sweep_ids))
            sweeps = self._x(
                db, f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id IN ({marks})", sweep_ids
            )
            runs = self._x(
                db,
                f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id IN ({marks}) "
                "ORDER BY sweep_id, seq",
                sweep_ids,
            )
        sweep_rows, run_rows = sweeps.fetchall(), runs.fetchall()
        with dst._tx() as out:
            for row in sweep_rows:
                if dst._x(out, "SELECT 1 FROM sweeps WHERE id=?", (row[0],)).fetchone():
                    dst._x(
                        out,
                        "UPDATE sweeps SET state=?, reason=?, remote=? WHERE id=?",
                        (row[5], row[9], row[8], row[0]),
                    )
                else:
                    dst._x(
                        out,
                        f"INSERT INTO sweeps ({SWEEP_COLUMNS}) VALUES ({','.join('?' * len(row))})",
                        row,
                    )
                    counts["sweeps"] += 1
            for row in run_rows:
                have = dst._x(
                    out, f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (row[0],)
                ).fetchone()
                if have is not None and tuple(have) == tuple(row):
                    continue
                if have is None:
                    dst._x(
                        out,
                        f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({','.join('?' * len(row))})",
                        row,
                    )
                    counts["runs"] += 1
                else:
                    names = [c.strip() for c in RUN_COLUMNS.split(",")]
                    sets = ", ".join(f"{c}=?" for c in names[1:])
                    dst._x(out, f"UPDATE runs SET {sets} WHERE id=?", (*row[1:], row[0]))
                    dst._x(out, "DELETE FROM history WHERE run_id=?", (row[0],))
                    dst._x(out, "DELETE FROM history_columns WHERE run_id=?", (row[0],))
                    counts["updated"] += 1
                history = self._x(
                    db,
                    f"SELECT run_id, step, data FROM history WHERE run_id=? "
                    f"ORDER BY step, {self.history_order}",
                    (row[0],),
                ).fetchall()
                out.cursor().executemany(
                    dst._q("INSERT INTO history (run_id, step, data) VALUES (?,?,?)"), history
                )
                compacted = self._x_blobs(
                    db,
                    f"SELECT {COLUMN_FIELDS} FROM history_columns WHERE run_id=? ORDER BY pos",
                    (row[0],),
                ).fetchall()
                out.cursor().executemany(
                    dst._q(
                        f"INSERT INTO history_columns ({COLUMN_FIELDS}) VALUES (?,?,?,?,?,?,?,?)"
                    ),
                    [(*c[:5], _bytes(c[5]), bytes(c[6]), c[7]) for c in compacted],
                )
                counts["rows"] += len(history) + (int(compacted[0][4]) if compacted else 0)
        return counts

    # -- reading ------------------------------------------------------------------------
    def _row(self, db: Any, run_id: str) -> RunRecord:
        row = self._x(db, f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown run id {run_id!r} in {self.location}")
        return self._run(row)

    def _run_in(self, db: Any, run_id: str) -> RunRecord:
        return self._with_history(db, [self._row(db, run_id)])[0]

    @_retried
    def run(self, run_id: str) -> RunRecord:
        db = self._db()
        if db is None:
            raise NotFoundError(f"unknown run id {run_id!r} in {self.location}")
        return self._run_in(db, run_id)

    @_retried
    def agents_on(self, host: str) -> list[str]:
        db = self._db()
        if db is None:
            return []
        rows = self._x(
            db,
            "SELECT DISTINCT agent FROM runs WHERE state='running' AND heartbeat_at >= ? "
            "AND agent LIKE ?",
            (time.time() - self.lease_timeout, host + "-%"),
        ).fetchall()
        # LIKE's wildcards (_ and % in a name) and the dashes in host names match more than
        # this host's agents
        mine = re.compile(rf"{re.escape(host)}-\d+(-slurm[\w]+)?")
        return sorted(a for (a,) in rows if isinstance(a, str) and mine.fullmatch(a))

    @_retried
    def runs(self, sweep_id: str | None, *, history: bool = True) -> list[RunRecord]:
        db = self._db()
        if db is None:
            return []
        where = "sweep_id IS NULL" if sweep_id is None else "sweep_id=?"
        args = () if sweep_id is None else (sweep_id,)
        runs = [
            self._run(r)
            for r in self._x(
                db, f"SELECT {RUN_COLUMNS} FROM runs WHERE {where} ORDER BY seq", args
            ).fetchall()
        ]
        return self._with_history(db, runs) if history else runs

    def _with_history(self, db: Any, runs: list[RunRecord]) -> list[RunRecord]:
        ids = [r.id for r in runs]
        compacted, live = self._column_rows(db, ids), self._json_rows(db, ids)
        for r in runs:
            r.history = compacted.get(r.id, []) + live.get(r.id, [])
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
            _crashes,
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


def _chunks(ids: list[str], size: int = _CHUNK) -> Iterator[tuple[list[str], str]]:
    """``ids`` in slices a driver takes as bound parameters, each with its ``?`` marks."""
    for i in range(0, len(ids), size):
        chunk = ids[i : i + size]
        yield chunk, ",".join("?" * len(chunk))


def _bytes(blob: Any) -> bytes | None:
    """A BLOB/BYTEA value as bytes (drivers hand back bytes or memoryview), or None."""
    return None if blob is None else bytes(blob)
