"""Script trials: run a sweep's program as W&B's agent would, offline, and read it back.

A trial is a process of its own, started from the spec's ``command`` in the spec's
folder with the environment and parameter files of W&B's agent
(``backends.wandb.agent_trial``). The script's own ``wandb.init`` writes its run under
``results/wandb`` with the ledger's run id (``WANDB_RUN_ID``), offline unless the user
set ``WANDB_MODE``; this module reads that run's log while it grows, so the ledger,
``early_terminate`` and ``bayes`` see the metrics as they come. A run to stop is ended
as W&B's agent ends it: SIGTERM, then SIGKILL after ``WANDB_AGENT_KILL_DELAY`` (30 s).
"""

from __future__ import annotations

import collections
import math
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

from srsweep.agents.eta import SweepEta
from srsweep.agents.signals import Heartbeat
from srsweep.agents.signals import training
from srsweep.agents.trial import lost_lease
from srsweep.agents.trial import record_outcome
from srsweep.backends import wandb as wb
from srsweep.errors import EnvironmentFault
from srsweep.errors import LeaseLostError

if TYPE_CHECKING:
    from srsweep.agents.signals import Signals
    from srsweep.agents.trial import Echo
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord

__all__ = [
    "CHECK_EVERY",
    "FLUSH_INTERVAL",
    "POLL",
    "ScriptTrial",
    "execute_script",
    "nonfinite",
    "stderr_tail",
]

POLL = 0.25  # seconds between reads of the script's log and stderr
# seconds between early-termination checks: kernels check every 2 s, but a script's
# metrics arrive only as often as wandb flushes its log (FLUSH_INTERVAL)
CHECK_EVERY = 1.0
PROGRESS_EVERY = 10.0  # seconds between progress lines
# wandb writes a run's log every 15 s by default; a live ledger needs it sooner (the
# same setting lets `wandb leet` follow a running run). The user's own value wins.
FLUSH_INTERVAL = "1"
TAIL_LINES = 20  # lines of stderr kept in a failed run's error
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ScriptTrial:
    """One claimed trial of a script sweep, from process start to its ledger outcome.

    ``run`` is called from the agent's main thread; ``request_stop`` may be called from a
    signal handler (it only sets a flag the watch loop acts on).

    Args:
        backend: the ledger.
        record: the claimed run (``running``).
        spec: the sweep's W&B spec (``program``, ``command``, ``project``...).
        workdir: the spec's folder, where the command runs.
        results: the results folder; ``WANDB_DIR`` of the script.
        echo: where progress lines go.
        stop_check: returns a reason to stop the run now (early termination) or None.
        signals: the agent's signal handling (a second signal kills the script at once).
        eta: what the agent knows of the sweep's trials ahead, for the time left that
            progress lines end with (a script's own number of steps is unknown).
    """

    def __init__(
        self,
        backend: Backend,
        record: RunRecord,
        spec: dict[str, Any],
        workdir: Path,
        *,
        results: Path,
        echo: Echo,
        stop_check: Callable[[], str | None] | None = None,
        signals: Signals | None = None,
        eta: SweepEta | None = None,
    ) -> None:
        self.backend, self.record, self.spec = backend, record, spec
        self.signals = signals
        self.workdir, self.results, self.echo = workdir, results.resolve(), echo
        self.stop_check = stop_check
        self.eta = eta or SweepEta()
        self.stop_reason: str | None = None
        self.history: list[dict[str, Any]] = []
        self._reader: wb.OfflineRunReader | None = None
        self._err_path = self.results / (record.sweep_id or "runs") / "logs" / f"{record.id}.err"
        self._err_pos = 0
        self._t0 = time.monotonic()

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def run(self) -> RunRecord:
        """Start the script, follow it to its end, and record the outcome."""
        self.backend.set_config(self.record.id, self.record.params)
        try:
            argv, env = self._command()
            self._err_path.parent.mkdir(parents=True, exist_ok=True)
            with self._err_path.open("wb") as err:
                proc = self._start(argv, env, err)
        except (OSError, ValueError) as e:  # no such program, not executable, bad command
            return self._finish("failed", f"cannot start the trial's command: {e}")
        try:
            with training(self.signals, [self]):
                code, signalled = self._watch(proc)
        except KeyboardInterrupt as e:  # a second signal: end the script now
            self._end(proc)
            record = self._finish("preempted", str(e) or "interrupted")
            if self.signals is None or not self.signals.received:
                raise  # not the agent's signal handling: the caller's to handle
            return record
        except EnvironmentFault:  # the ledger is gone: record nothing, stop the agent
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
        except Exception as e:  # the agent's own failure (e.g. reading the ledger)
            self._end(proc)
            return self._finish("failed", "".join(traceback.format_exception(e)))
        _signal_group(proc, signal.SIGKILL)  # workers the script left behind end with it
        self._collect()
        if self.stop_reason is not None and signalled:
            state = "preempted" if self.stop_reason.startswith("preempted") else "stopped"
            return self._finish(state, self.stop_reason)
        if code != 0:
            return self._finish("failed", self._failure(code))
        return self._finish("finished", None)

    # -- the process ------------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        env["WANDB_DIR"] = str(self.results)  # runs land where `srsweep sync` looks
        env.setdefault("WANDB_MODE", "offline")
        env.setdefault("WANDB__TRANSACTION_LOG_FLUSH_INTERVAL", FLUSH_INTERVAL)
        # `wandb agent` exports the sweep's project and entity the same way
        env.setdefault("WANDB_PROJECT", str(self.spec.get("project") or "srsweep"))
        if self.spec.get("entity"):
            env.setdefault("WANDB_ENTITY", str(self.spec["entity"]))
        self.results.mkdir(parents=True, exist_ok=True)
        return wb.agent_trial(
            self.spec.get("command"),
            self.record.params,
            program=str(self.spec.get("program") or ""),
            sweep_id=self.record.sweep_id or "",
            run_id=self.record.id,
            env=env,
        )

    def _start(
        self, argv: list[str], env: dict[str, str], err: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        if not argv:
            raise ValueError("the command is empty once its macros are expanded")
        # As W&B's agent: a process group of its own (a Ctrl-C at the terminal reaches
        # the agent, which decides how to stop the run) and a closed stdin (a script
        # reading it gets EOF instead of blocking). stderr goes to a file the agent
        # forwards, so a failed run keeps its tail.
        # Through a supervisor that kills the group should this agent die (kill -9 too).
        supervised = [sys.executable, "-m", "srsweep.supervise", str(os.getpid()), "--", *argv]
        proc = subprocess.Popen(
            supervised,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.PIPE,
            stderr=err,
            process_group=0,
        )
        assert proc.stdin is not None
        proc.stdin.close()
        return proc

    def _watch(self, proc: subprocess.Popen[bytes]) -> tuple[int, bool]:
        """Poll until the process ends; returns its exit code and whether it was told
        to stop (SIGTERM, then SIGKILL after the kill delay, as W&B's agent does)."""
        delay = wb.kill_delay()
        checked = progressed = time.monotonic()
        kill_at: float | None = None
        while (code := proc.poll()) is None:
            self._collect()
            now = time.monotonic()
            if self.stop_reason is None and self.stop_check is not None:
                if now - checked >= CHECK_EVERY:
                    checked = now
                    self.stop_reason = self.stop_check()
            if self.stop_reason is not None:
                if kill_at is None:
                    _signal_group(proc, signal.SIGTERM)
                    kill_at = now + delay
                elif now >= kill_at:
                    _signal_group(proc, signal.SIGKILL)
            if now - progressed >= PROGRESS_EVERY:
                progressed = now
                self.echo(self._progress_line())
            time.sleep(POLL)
        return code, kill_at is not None

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        self._collect()

    # -- what it wrote ----------------------------------------------------------------
    def _collect(self, backend: Backend | None = None) -> None:
        """Forward new stderr, and move new metrics from the script's run to the ledger
        (through ``backend``, when the caller's thread has a handle of its own)."""
        self._forward_stderr()
        if self._reader is None:
            path = wb.run_log(self.results, self.record.id)
            if path is None:
                return
            self._reader = wb.OfflineRunReader(path)
        rows = [_ledger_row(r, len(self.history) + i) for i, r in enumerate(self._reader.read())]
        rows = [r for r in rows if len(r) > 1]
        if rows:
            self.history += rows
            try:
                (backend or self.backend).log(self.record.id, rows)
            except LeaseLostError as e:  # the trial is another agent's now: stop it
                self.request_stop(f"lease lost: {e}")

    def _forward_stderr(self) -> None:
        try:
            with self._err_path.open("rb") as fh:
                fh.seek(self._err_pos)
                data = fh.read()
        except OSError:
            return
        if data:
            self._err_pos += len(data)
            sys.stderr.write(data.decode("utf-8", "replace"))
            sys.stderr.flush()

    def _failure(self, code: int) -> str:
        """``exit code N`` and the tail of stderr."""
        what = f"exit code {code}"
        if -code in signal.valid_signals():
            what += f" (killed by {signal.Signals(-code).name})"
        tail = stderr_tail(self._err_path.read_text(encoding="utf-8", errors="replace"))
        return f"{what}; stderr ends:\n" + "\n".join(tail) if tail else f"{what}; no stderr"

    def _finish(self, state: str, error: str | None) -> RunRecord:
        summary: dict[str, Any] = {}
        for row in self.history:  # W&B's default summary: each metric's last value
            summary.update({k: v for k, v in row.items() if k != "_step"})
        config = dict(self.record.params)
        if self._reader is not None:
            summary.update(_scalars(self._reader.summary))
            config.update(self._reader.config)
        if bad := nonfinite(self.history, summary):  # flagged; the run keeps W&B's state
            summary["nonfinite"] = bad
        if self.record.retry_of is not None:  # a script cannot resume: it started afresh
            summary["resumed_from_step"] = 0
        summary["runtime"] = round(time.monotonic() - self._t0, 3)
        try:
            record_outcome(
                self.backend, self.record, state, config=config, summary=summary, error=error
            )
        except LeaseLostError as e:
            return lost_lease(self.record, e)
        record = self.record
        record.state, record.error, record.summary, record.config = state, error, summary, config
        record.history = list(self.history)
        return record

    def _progress_line(self) -> str:
        last = self.history[-1] if self.history else {"_step": 0}
        shown = [f"{k}={_fmt(v)}" for k, v in last.items() if k != "_step"][:4]
        took = time.monotonic() - self._t0
        left = self.eta.text(took, int(last["_step"]), None)
        return (
            f"  {self.record.name} step {last['_step']} {' '.join(shown)} "
            f"({took:.0f}s{', ' + left if left else ''})"
        )


def execute_script(
    backend: Backend,
    record: RunRecord,
    spec: dict[str, Any],
    workdir: Path,
    *,
    results: Path,
    echo: Echo,
    stop_check: Callable[[str], str | None] | None = None,
    signals: Signals | None = None,
    eta: SweepEta | None = None,
) -> RunRecord:
    """Run one claimed trial of a script sweep in its own process, with heartbeats, and
    record its outcome in the ledger."""
    trial = ScriptTrial(
        backend,
        record,
        spec,
        workdir,
        results=results,
        echo=echo,
        stop_check=None if stop_check is None else lambda: stop_check(record.id),
        signals=signals,
        eta=eta,
    )
    return supervised(trial, backend)


def supervised(trial: ScriptTrial, backend: Backend) -> RunRecord:
    """``trial.run()`` with heartbeats for its run."""
    beat = Heartbeat(backend, [trial.record.id])
    try:
        return trial.run()
    finally:
        beat.stop()


def nonfinite(history: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The metrics logged as NaN or +-inf in any row of ``history`` or in ``summary``.

    A run keeps the state its script gave it (W&B's rule: a script that logs NaN and
    exits 0 has finished); its summary's ``nonfinite`` lists these metrics, and the
    engine counts the run as missing (the worst) for them."""
    return sorted(
        {
            k
            for row in (*history, summary)
            for k, v in row.items()
            if isinstance(v, float) and not math.isfinite(v)
        }
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the trial's whole process group (its children too: multiprocessing
    workers, a launcher's subprocesses)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the group is gone already
        pass


def stderr_tail(text: str, n: int = TAIL_LINES) -> list[str]:
    """The last ``n`` non-empty lines of a script's stderr, without wandb's own status
    lines (``wandb: ...``, printed after a traceback as the run closes), except errors."""
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    kept = [ln for ln in lines if ln and not (ln.startswith("wandb:") and "ERROR" not in ln)]
    return list(collections.deque(kept, maxlen=n))


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Logged numbers, booleans and strings; wandb's own ``_`` keys and media dropped."""
    return {
        k: v
        for k, v in values.items()
        if not k.startswith("_") and isinstance(v, (int, float, bool, str))
    }


def _ledger_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    step = row.get("_step", index)
    return {"_step": int(step) if isinstance(step, (int, float)) else index, **_scalars(row)}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)
