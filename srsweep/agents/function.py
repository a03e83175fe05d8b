"""Function trials: a sweep's trials run as calls of a Python function in this process,
as ``wandb.agent(sweep_id, function=train)`` runs them.

Before each call the trial's parameters are written where ``wandb.init`` looks for a
sweep's (``WANDB_SWEEP_PARAM_PATH``, with ``WANDB_RUN_ID`` and ``WANDB_SWEEP_ID``), and
wandb's session is reset so it reads them: inside the function ``wandb.init()`` (with
or without ``config=`` defaults), ``wandb.config``, ``wandb.log``, ``wandb.summary`` and
``run.finish()`` behave as in a W&B sweep. The run is written offline under
``results/wandb`` (``WANDB_MODE`` set to ``online`` uploads it as well), and a watcher
thread moves its logged metrics to the ledger while the function runs, so
``early_terminate``, ``bayes`` and ``metric.target`` see them.

A trial to stop early is stopped as W&B's Python agent stops one: an exception is raised
in the calling thread (``TrialStopped``), at the next Python line the function runs.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep.agents.scripts import CHECK_EVERY
from srsweep.agents.scripts import FLUSH_INTERVAL
from srsweep.agents.scripts import POLL
from srsweep.agents.scripts import ScriptTrial
from srsweep.agents.scripts import supervised
from srsweep.agents.signals import training
from srsweep.backends import wandb as wb

if TYPE_CHECKING:
    from srsweep.agents.signals import Signals
    from srsweep.agents.trial import Echo
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord

__all__ = ["FunctionTrial", "TrialStopped", "execute_function"]

EXIT_WAIT = 10.0  # seconds to wait for wandb to close a finished run's log


class TrialStopped(BaseException):
    """Raised inside the user's function to end a trial the agent stops (early
    termination, a signal). A BaseException, so a user's ``except Exception`` does not
    swallow it."""


class FunctionTrial(ScriptTrial):
    """One claimed trial of a sweep, run as a call of ``function`` in this thread.

    It shares the script trial's reading of the offline run and its ledger outcome;
    only starting and stopping differ.
    """

    def __init__(
        self,
        backend: Backend,
        record: RunRecord,
        spec: dict[str, Any],
        function: Callable[[], Any],
        *,
        results: Path,
        echo: Echo,
        stop_check: Callable[[], str | None] | None = None,
        signals: Signals | None = None,
    ) -> None:
        super().__init__(
            backend,
            record,
            spec,
            Path.cwd(),
            results=results,
            echo=echo,
            stop_check=stop_check,
            signals=signals,
        )
        self.function = function
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._calling = False

    def request_stop(self, reason: str) -> None:
        """Stop the call at its next line (from any thread, a signal handler included)."""
        with self._lock:
            first = self.stop_reason is None
            self.stop_reason = self.stop_reason or reason
            if first and self._calling:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(TrialStopped)
                )

    def run(self) -> RunRecord:
        """Call the function as the trial's run, follow it, and record the outcome."""
        self.backend.set_config(self.record.id, self.record.params)
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch_call, args=(done,), daemon=True, name="srsweep-function-watch"
        )
        error: str | None = None
        state = "finished"
        foreign: KeyboardInterrupt | None = None  # one not raised by the agent's handler
        with self._environment():
            wb.reset_session()  # wandb reads the new trial's settings at its next init
            watcher.start()
            try:
                try:
                    with self._lock:
                        self._calling = True
                    with training(self.signals, [self]):
                        self.function()
                finally:
                    with self._lock:
                        self._calling = False
            except TrialStopped:
                state = (
                    "preempted" if (self.stop_reason or "").startswith("preempted") else "stopped"
                )
                error = self.stop_reason
            except KeyboardInterrupt as e:  # a second signal, or one the agent did not handle
                state, error = "preempted", str(e) or "interrupted"
                if self.signals is None or not self.signals.received:
                    foreign = e
            except Exception as e:  # the function's own failure: its traceback
                state, error = "failed", "".join(traceback.format_exception(e)).strip()
            finally:
                wb.finish_active_run(exit_code=0 if state == "finished" else 1)
                done.set()
                watcher.join()
        self._collect_to_exit()
        record = self._finish(state, error)
        if foreign is not None:
            raise foreign  # the caller's to handle, once the trial is recorded
        return record

    def _watch_call(self, done: threading.Event) -> None:
        """Move metrics to the ledger and check early termination while the call runs
        (on a ledger handle of its own: a connection stays in its thread)."""
        own = self.backend.reopen()
        checked = time.monotonic()
        try:
            while not done.wait(POLL):
                self._collect(own)
                if self.stop_check is not None and time.monotonic() - checked >= CHECK_EVERY:
                    checked = time.monotonic()
                    reason = self.stop_check()
                    if reason is not None:
                        self.request_stop(reason)
        finally:
            own.close()

    def _collect_to_exit(self) -> None:
        """The run's last metrics: wandb may still be writing its log just after
        ``finish`` returns, so read until its exit record (a call that never started a
        run has no log)."""
        deadline = time.monotonic() + EXIT_WAIT
        self._collect()
        while self._reader is not None and self._reader.exit_code is None:
            if time.monotonic() > deadline:
                self.echo(
                    f"  warning: {self.record.name}: wandb did not close its log "
                    f"within {EXIT_WAIT:g}s; the ledger has the metrics read so far"
                )
                return
            time.sleep(0.02)
            self._collect()

    def _forward_stderr(self) -> None:  # the function writes to this process's stderr
        return

    @contextmanager
    def _environment(self) -> Iterator[None]:
        """This process's environment as W&B's agent sets it for the trial, restored after."""
        base = dict(os.environ)
        base["WANDB_DIR"] = str(self.results)
        if base.get("WANDB_MODE", "offline") not in ("online", "offline"):
            base["WANDB_MODE"] = "offline"  # the ledger reads the metrics from the run's log
        base.setdefault("WANDB_MODE", "offline")
        base.setdefault("WANDB__TRANSACTION_LOG_FLUSH_INTERVAL", FLUSH_INTERVAL)
        base.setdefault("WANDB_PROJECT", str(self.spec.get("project") or "srsweep"))
        if self.spec.get("entity"):
            base.setdefault("WANDB_ENTITY", str(self.spec["entity"]))
        self.results.mkdir(parents=True, exist_ok=True)
        _, env = wb.agent_trial(
            None,
            self.record.params,
            program="",
            env=base,
            sweep_id=self.record.sweep_id or "",
            run_id=self.record.id,
        )
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def execute_function(
    backend: Backend,
    record: RunRecord,
    spec: dict[str, Any],
    function: Callable[[], Any],
    *,
    results: Path,
    echo: Echo,
    stop_check: Callable[[str], str | None] | None = None,
    signals: Signals | None = None,
) -> RunRecord:
    """Run one claimed trial as a call of ``function``, with heartbeats, and record its
    outcome in the ledger. A KeyboardInterrupt that reached the function (not through
    the agent's signal handler) is re-raised once the trial is recorded ``preempted``."""
    trial = FunctionTrial(
        backend,
        record,
        spec,
        function,
        results=results,
        echo=echo,
        stop_check=None if stop_check is None else lambda: stop_check(record.id),
        signals=signals,
    )
    return supervised(trial, backend)
