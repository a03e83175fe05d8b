"""Agents: claim a trial, run its kernel, record the outcome, repeat.

A trial's outcome is always written to the ledger, whatever happens inside the kernel:
``finished``, ``stopped`` (early termination or a stop request), ``failed`` (with the
reason, or the traceback of an unexpected error) or ``preempted`` (interrupted by a
signal). The agent moves on to the next trial after a failure.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import FrameType
from typing import Any

from srsweep import engine
from srsweep import kernels
from srsweep.backends._base import RunRecord
from srsweep.backends.local import LocalBackend
from srsweep.errors import KernelFailed
from srsweep.errors import SrsweepError
from srsweep.kernels import _config
from srsweep.spec import swept_keys
from srsweep.tracking import TrialRun
from srsweep.tracking import WandbSink

__all__ = ["AgentResult", "run_agent", "run_single", "execute"]

Echo = Callable[[str], None]

# the W&B agent's rule: stop when trials keep failing right away (a broken setup)
FAIL_LIMIT = 5
FAIL_WINDOW = 60.0


@dataclass
class AgentResult:
    """What one agent did: runs by final state, and why it stopped."""

    states: collections.Counter[str] = field(default_factory=collections.Counter)
    reason: str = ""
    runs: list[str] = field(default_factory=list)
    failed_fast: bool = False  # stopped because trials kept failing


class _Signals:
    """First SIGTERM/SIGINT: finish the step, save, mark the trial preempted, stop
    claiming. Second: exit at once (the ledger is consistent either way)."""

    def __init__(self) -> None:
        self.current: TrialRun | None = None
        self.received = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received > 1:
            raise KeyboardInterrupt
        if self.current is not None:
            self.current.request_stop(f"preempted by {signal.Signals(signum).name}")

    @contextmanager
    def installed(self) -> Iterator[_Signals]:
        old = {s: signal.signal(s, self.handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class _Heartbeat:
    """Marks a run alive in the ledger every ``every`` seconds from a thread of its own,
    so a kernel busy in a long step is not mistaken for a dead agent."""

    def __init__(self, root: Path, run_id: str, every: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(root, run_id, every),
                                        daemon=True, name=f"heartbeat-{run_id}")
        self._thread.start()

    def _beat(self, root: Path, run_id: str, every: float) -> None:
        backend = LocalBackend(root)  # SQLite connections stay in their own thread
        try:
            while not self._stop.wait(every):
                backend.heartbeat(run_id)
        finally:
            backend.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _limit_threads() -> None:
    """One intra-op thread per trial unless SRSWEEP_THREADS says otherwise: these nets are
    tiny, and on a 2-core box two torch threads ran the sd kernel slower than one."""
    if "torch" in sys.modules:  # only kernels import torch; don't pay for it otherwise
        torch = sys.modules["torch"]
        torch.set_num_threads(int(os.environ.get("SRSWEEP_THREADS", "1")))


def agent_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def execute(backend: LocalBackend, record: RunRecord, kernel: kernels.Kernel,
            overrides: dict[str, Any], *, results: Path, project: str, echo: Echo,
            source: str, stop_check: Callable[[], str | None] | None = None,
            signals: _Signals | None = None) -> RunRecord:
    """Run one claimed trial to its end and record the outcome in the ledger."""
    state, error = "failed", None
    run: TrialRun | None = None
    sink: WandbSink | None = None
    beat = _Heartbeat(backend.root, record.id, every=min(10.0, backend.lease_timeout / 4))
    try:
        cfg = _config.build(kernel.config, overrides, source)
        config = _config.to_dict(cfg)
        backend.set_config(record.id, config)
        model_path = results / (record.sweep_id or "runs") / "models" / f"{record.id}.joblib"
        sink = WandbSink(record, config, project=project, root=results,
                         group=record.sweep_id or "runs")
        run = TrialRun(record, config, backend, model_path, wandb_sink=sink,
                       stop_check=stop_check, progress=echo)
        if signals is not None:
            signals.current = run
        _limit_threads()
        kernel.train(cfg, run)
        state = "finished"
        if run.stop_reason is not None:
            state = "preempted" if run.stop_reason.startswith("preempted") else "stopped"
            error = run.stop_reason
    except KernelFailed as e:
        error = str(e)
    except KeyboardInterrupt:
        state, error = "preempted", "interrupted"
        raise
    except SrsweepError as e:
        error = str(e)
    except Exception:
        error = traceback.format_exc()
    finally:
        beat.stop()
        if signals is not None:
            signals.current = None
        summary: dict[str, Any] = {}
        if run is not None:
            run.flush()
            summary = dict(run.summary, runtime=round(run.elapsed(), 3))
        backend.finish(record.id, state, summary=summary, error=error,
                       model_path=str(run.model_path) if run is not None and run.saved
                       else None)
        if sink is not None:
            sink.finish(state, summary)
    record.state, record.error, record.summary = state, error, summary
    return record


def _params_line(params: dict[str, Any], keys: list[str]) -> str:
    flat = _config.flatten(params)
    return " ".join(f"{k}={flat[k]}" for k in keys if k in flat)


def _outcome_line(record: RunRecord, metric: str) -> str:
    value = record.summary.get(metric)
    shown = f" {metric}={value:.4g}" if isinstance(value, float) else ""
    runtime = record.summary.get("runtime")
    took = f" in {runtime:.1f}s" if isinstance(runtime, float) else ""
    line = f"  -> {record.state}{took}{shown}"
    if record.error and record.state == "failed":
        line += f": {record.error.strip().splitlines()[-1]}"
    return line


def run_agent(backend: LocalBackend, sweep_id: str, *, results: Path,
              count: int | None = None, echo: Echo = print) -> AgentResult:
    """Claim and run trials of ``sweep_id`` until it is exhausted, stopped, or ``count``
    trials have run."""
    sweep = backend.sweep(sweep_id)
    kernel = kernels.get(sweep.kernel)
    metric = (sweep.spec.get("metric") or {}).get("name", kernel.metric)
    project = str(sweep.spec.get("project") or "srsweep")
    agent = agent_name()
    result = AgentResult()
    signals = _Signals()
    early = "early_terminate" in sweep.spec and "metric" in sweep.spec
    failures: list[float] = []
    swept = swept_keys(sweep.spec)
    with signals.installed():
        while count is None or len(result.runs) < count:
            if signals.received:
                result.reason = "stopped by signal"
                break
            record = backend.claim(sweep_id, agent)
            if record is None:
                state = backend.sweep(sweep_id).state
                result.reason = "sweep stopped" if state != "active" else "sweep exhausted"
                break
            result.runs.append(record.id)
            n = f"{len(result.runs)}" + (f"/{count}" if count else "")
            echo(f"[{n}] {record.name} ({record.id}) {_params_line(record.params, swept)}")

            def check(rid: str = record.id) -> str | None:
                stop = engine.to_stop(sweep.spec, backend.runs(sweep_id))
                return "early-terminated by the sweep's early_terminate rule" \
                    if rid in stop else None

            execute(backend, record, kernel, record.params, results=results,
                    project=project, echo=echo, source=f"sweep {sweep_id} run {record.id}",
                    stop_check=check if early else None, signals=signals)
            result.states[record.state] += 1
            echo(_outcome_line(record, metric))
            if record.state == "preempted":
                backend.requeue(record.id)
                echo(f"  {record.name} queued again")
            failures = failures[-FAIL_LIMIT + 1:] + [time.monotonic()] \
                if record.state == "failed" else []
            if len(failures) == FAIL_LIMIT and failures[-1] - failures[0] <= FAIL_WINDOW:
                result.reason = (f"{len(failures)} trials failed in a row within "
                                 f"{FAIL_WINDOW:.0f}s; stopping this agent (last error: "
                                 f"{(record.error or '').strip().splitlines()[-1]})")
                result.failed_fast = True
                break
        else:
            result.reason = f"count of {count} reached"
    return result


def run_single(backend: LocalBackend, kernel_name: str, overrides: dict[str, Any], *,
               results: Path, source: str, echo: Echo = print) -> RunRecord:
    """One run outside any sweep (``srsweep run``); bad overrides fail before it starts."""
    kernel = kernels.get(kernel_name)
    config = _config.to_dict(_config.build(kernel.config, overrides, source))
    record = backend.start_run(kernel.name, config, agent_name())
    echo(f"{record.name} ({record.id}) {kernel.name}")
    t0 = time.monotonic()
    with _Signals().installed() as signals:
        execute(backend, record, kernel, overrides, results=results, project="srsweep",
                echo=echo, source=source, signals=signals)
    echo(_outcome_line(record, kernel.metric) + f" [{time.monotonic() - t0:.1f}s wall]")
    return record
