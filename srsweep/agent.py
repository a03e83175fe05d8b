"""Agents: claim a trial, run its kernel (or script), record the outcome, repeat.

A trial's outcome is always written to the ledger, whatever happens inside the kernel:
``finished``, ``stopped`` (early termination or a stop request), ``failed`` (with the
reason, or the traceback of an unexpected error) or ``preempted`` (interrupted by a
signal). The agent moves on to the next trial after a failure. A sweep whose program
is a script runs each trial in a process of its own, as W&B's agent would (``scripts``).
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
from typing import Protocol

from srsweep import config as _config
from srsweep import engine
from srsweep import kernels
from srsweep import scripts
from srsweep.backends._base import RunRecord
from srsweep.backends.local import LocalBackend
from srsweep.errors import SpecError
from srsweep.errors import SrsweepError
from srsweep.kernels import Entry
from srsweep.spec import SCRIPT
from srsweep.spec import objective
from srsweep.spec import swept_keys
from srsweep.tracking import TrialRun
from srsweep.tracking import WandbSink

__all__ = ["AgentResult", "run_agent", "run_single", "execute"]

Echo = Callable[[str], None]

# the W&B agent's rule: stop when trials keep failing right away (a broken setup)
FAIL_LIMIT = 5
FAIL_WINDOW = 60.0
DEFAULT_CUDA_PACK = 64


@dataclass
class AgentResult:
    """What one agent did: runs by final state, and why it stopped."""

    states: collections.Counter[str] = field(default_factory=collections.Counter)
    reason: str = ""
    runs: list[str] = field(default_factory=list)
    failed_fast: bool = False  # stopped because trials kept failing


class _Stoppable(Protocol):
    def request_stop(self, reason: str) -> None: ...


class _Signals:
    """First SIGTERM/SIGINT: finish the step, save, mark the trial preempted, stop
    claiming (a script gets SIGTERM, as from W&B's agent). Second: exit at once (the
    ledger is consistent either way)."""

    def __init__(self) -> None:
        self.current: list[_Stoppable] = []
        self.received = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received > 1:
            raise KeyboardInterrupt
        for run in self.current:
            run.request_stop(f"preempted by {signal.Signals(signum).name}")

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

    def __init__(self, root: Path, run_ids: list[str], every: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(root, run_ids, every), daemon=True, name="srsweep-heartbeat"
        )
        self._thread.start()

    def _beat(self, root: Path, run_ids: list[str], every: float) -> None:
        backend = LocalBackend(root)  # SQLite connections stay in their own thread
        try:
            while not self._stop.wait(every):
                backend.heartbeat(run_ids)
        finally:
            backend.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _limit_threads(packed: bool) -> None:
    """Torch intra-op threads: ``SRSWEEP_THREADS`` if set; else every core for a pack
    trained on the CPU (its batched matmuls use them: sd, stn and lazy packs ran 1.2-1.5x
    faster on 2 cores than on one; ``make bench``) and one otherwise (these nets are
    tiny: on a 2-core box two threads ran a single sd trial slower than one, and on a
    CUDA node the GPU does the work while several agents may share the CPU)."""
    if "torch" in sys.modules:  # only kernels import torch; don't pay for it otherwise
        torch = sys.modules["torch"]
        env = os.environ.get("SRSWEEP_THREADS")
        cpu_pack = packed and not torch.cuda.is_available()
        torch.set_num_threads(int(env) if env else _cores() if cpu_pack else 1)


def _cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def agent_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def resolved(kernel: kernels.Kernel, cfg: Any, backend: LocalBackend, source: str) -> Any:
    """``cfg`` with the runs it names (srnet's ``disc.from_run``) resolved to model files
    through this ledger: kernels never open the ledger themselves. Errors name ``source``
    (the sweep's run, ``--set``, ...), as config errors do."""
    if kernel.resolve is None:
        return cfg
    try:
        return kernel.resolve(cfg, backend.run)
    except SpecError as e:
        raise SpecError(source, e.violations) from None


def _error_text(exc: BaseException) -> str:
    """A kernel's deliberate failure is its message; anything else keeps its traceback."""
    if isinstance(exc, SrsweepError):
        return str(exc)
    return "".join(traceback.format_exception(exc))


class _Trial:
    """One claimed trial's lifecycle: config, sinks and the outcome in the ledger."""

    def __init__(
        self,
        backend: LocalBackend,
        record: RunRecord,
        kernel: kernels.Kernel,
        overrides: dict[str, Any],
        *,
        results: Path,
        project: str,
        echo: Echo,
        source: str,
        stop_check: Callable[[], str | None] | None,
    ) -> None:
        self.backend, self.record = backend, record
        self.cfg: Any = None
        self.run: TrialRun | None = None
        self.sink: WandbSink | None = None
        self.error: str | None = None
        try:
            built = _config.build(kernel.config, overrides, source)
            self.cfg = resolved(kernel, built, backend, source)
            config = _config.to_dict(self.cfg)
            backend.set_config(record.id, config)
            # absolute: the ledger outlives the directory it was written from
            models = results.resolve() / (record.sweep_id or "runs") / "models"
            model_path = models / f"{record.id}.joblib"
            self.sink = WandbSink(
                record, config, project=project, root=results, group=record.sweep_id or "runs"
            )
            self.run = TrialRun(
                record,
                config,
                backend,
                model_path,
                wandb_sink=self.sink,
                stop_check=stop_check,
                progress=echo,
            )
        except Exception as e:  # a bad config fails this trial only
            self.error = _error_text(e)

    def finish(self, exc: BaseException | None) -> RunRecord:
        """Record the outcome: ``exc`` is what ended the kernel (None: it returned)."""
        record, run = self.record, self.run
        state, error = "failed", self.error
        if run is not None and self.error is None:
            if exc is None:
                state = "finished"
                if run.stop_reason is not None:
                    state = "preempted" if run.stop_reason.startswith("preempted") else "stopped"
                    error = run.stop_reason
            elif isinstance(exc, KeyboardInterrupt):
                state, error = "preempted", "interrupted"
            else:
                error = _error_text(exc)
        summary: dict[str, Any] = {}
        if run is not None:
            run.flush()
            summary = dict(run.summary, runtime=round(run.elapsed(), 3))
        self.backend.finish(
            record.id,
            state,
            summary=summary,
            error=error,
            model_path=str(run.model_path) if run and run.saved else None,
        )
        if self.sink is not None:
            self.sink.finish(state, summary, run.model_path if run and run.saved else None)
        record.state, record.error, record.summary = state, error, summary
        return record


def execute(
    backend: LocalBackend,
    records: list[RunRecord],
    kernel: kernels.Kernel,
    *,
    results: Path,
    project: str,
    echo: Echo,
    source: str,
    overrides: dict[str, Any] | None = None,
    stop_check: Callable[[str], str | None] | None = None,
    signals: _Signals | None = None,
) -> list[RunRecord]:
    """Run claimed trials to their end, alone (one record) or packed (several records of
    one ``pack_key``), and record each outcome in the ledger."""

    def check_for(run_id: str) -> Callable[[], str | None] | None:
        return None if stop_check is None else lambda: stop_check(run_id)

    trials = [
        _Trial(
            backend,
            r,
            kernel,
            r.params if overrides is None else overrides,
            results=results,
            project=project,
            echo=echo,
            source=f"{source} run {r.id}" if overrides is None else source,
            stop_check=check_for(r.id),
        )
        for r in records
    ]
    ready = [t for t in trials if t.run is not None and t.error is None]
    outcomes: dict[int, BaseException | None] = {}
    beat = _Heartbeat(
        backend.root, [r.id for r in records], every=min(10.0, backend.lease_timeout / 4)
    )
    if signals is not None:
        signals.current = [t.run for t in ready if t.run is not None]
    try:
        alone = len(ready) == 1 or kernel.train_packed is None
        path = kernel.train if alone else kernel.train_packed
        if isinstance(path, Entry):  # import its torch now, so that its threads can be set
            path.load()
        _limit_threads(packed=not alone)
        if alone:
            for t in ready:
                assert t.run is not None
                try:
                    kernel.train(t.cfg, t.run)
                    outcomes[id(t)] = None
                except Exception as e:
                    outcomes[id(t)] = e
        elif ready:
            assert kernel.train_packed is not None
            try:
                results_ = kernel.train_packed([t.cfg for t in ready], [t.run for t in ready])  # type: ignore[misc]
                outcomes.update({id(t): o for t, o in zip(ready, results_, strict=True)})
            except Exception as e:  # the pack itself broke: every trial in it failed
                outcomes.update({id(t): e for t in ready})
    except KeyboardInterrupt as e:
        for t in ready:
            outcomes.setdefault(id(t), e)
        raise
    finally:
        beat.stop()
        if signals is not None:
            signals.current = []
        for t in trials:
            t.finish(outcomes.get(id(t)))
    return records


def execute_script(
    backend: LocalBackend,
    record: RunRecord,
    spec: dict[str, Any],
    workdir: Path,
    *,
    results: Path,
    echo: Echo,
    stop_check: Callable[[str], str | None] | None = None,
    signals: _Signals | None = None,
) -> RunRecord:
    """Run one claimed trial of a script sweep in its own process, with heartbeats, and
    record its outcome in the ledger."""
    trial = scripts.ScriptTrial(
        backend,
        record,
        spec,
        workdir,
        results=results,
        echo=echo,
        stop_check=None if stop_check is None else lambda: stop_check(record.id),
    )
    beat = _Heartbeat(backend.root, [record.id], every=min(10.0, backend.lease_timeout / 4))
    if signals is not None:
        signals.current = [trial]
    try:
        return trial.run()
    finally:
        beat.stop()
        if signals is not None:
            signals.current = []


def _params_line(params: dict[str, Any], keys: list[str]) -> str:
    flat = _config.flatten(params)
    return " ".join(f"{k}={flat[k]}" for k in keys if k in flat)


def _outcome_line(record: RunRecord, metric: str) -> str:
    value = record.summary.get(metric)
    shown = f" {metric}={value:.4g}" if isinstance(value, float) else ""
    runtime = record.summary.get("runtime")
    took = f" in {runtime:.1f}s" if isinstance(runtime, float) else ""
    line = f"  {record.name} -> {record.state}{took}{shown}"
    if record.error and record.state == "failed":
        line += f": {record.error.strip().splitlines()[-1]}"
    return line


def _pack_size(kernel: kernels.Kernel, pack: int | None, echo: Echo) -> int:
    """``--pack`` as asked, or by default 64 trials per pack on CUDA (where one tiny
    trial leaves the GPU idle) and 1 on CPU."""
    if kernel.train_packed is None:
        if pack is not None and pack > 1:
            echo(f"note: kernel {kernel.name} does not pack trials; running them one by one")
        return 1
    if pack is not None:
        return pack
    torch = sys.modules.get("torch")
    return DEFAULT_CUDA_PACK if torch is not None and torch.cuda.is_available() else 1


def _groups(kernel: kernels.Kernel, records: list[RunRecord]) -> list[list[RunRecord]]:
    """Claimed trials grouped by the kernel's ``pack_key`` (a bad config: alone)."""
    if kernel.pack_key is None or len(records) == 1:
        return [[r] for r in records]
    groups: dict[Any, list[RunRecord]] = {}
    for r in records:
        try:
            key = kernel.pack_key(_config.build(kernel.config, r.params, "pack"))
        except Exception:
            key = ("alone", r.id)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def run_agent(
    backend: LocalBackend,
    sweep_id: str,
    *,
    results: Path,
    count: int | None = None,
    pack: int | None = None,
    echo: Echo = print,
) -> AgentResult:
    """Claim and run trials of ``sweep_id`` until it is exhausted, stopped, or ``count``
    trials have run. With ``pack`` > 1, claim that many at a time and train those that
    share a shape as one batched model (each is still its own run)."""
    sweep = backend.sweep(sweep_id)
    kernel = None if sweep.kernel == SCRIPT else kernels.get(sweep.kernel)
    metric, _ = objective(sweep.spec, kernel)
    project = str(sweep.spec.get("project") or "srsweep")
    agent = agent_name()
    result = AgentResult()
    signals = _Signals()
    failures: list[float] = []
    swept = swept_keys(sweep.spec)
    if kernel is None and pack is not None and pack > 1:
        echo("note: a script sweep runs its trials one by one, each in its own process")
    pack = 1 if kernel is None else _pack_size(kernel, pack, echo)

    def check(run_id: str) -> str | None:
        stop = engine.to_stop(sweep.spec, backend.runs(sweep_id))
        return "early-terminated by the sweep's early_terminate rule" if run_id in stop else None

    early = "early_terminate" in sweep.spec and "metric" in sweep.spec
    with signals.installed():
        while count is None or len(result.runs) < count:
            if signals.received:
                result.reason = "stopped by signal"
                break
            want = pack if count is None else min(pack, count - len(result.runs))
            claimed: list[RunRecord] = []
            while len(claimed) < want and (r := backend.claim(sweep_id, agent)) is not None:
                claimed.append(r)
            if not claimed:
                state = backend.sweep(sweep_id).state
                result.reason = "sweep stopped" if state != "active" else "sweep exhausted"
                break
            for r in claimed:
                result.runs.append(r.id)
                n = f"{len(result.runs)}" + (f"/{count}" if count else "")
                echo(f"[{n}] {r.name} ({r.id}) {_params_line(r.params, swept)}")
            if kernel is None:
                for r in claimed:
                    execute_script(
                        backend,
                        r,
                        sweep.spec,
                        Path(sweep.source).parent,
                        results=results,
                        echo=echo,
                        stop_check=check if early else None,
                        signals=signals,
                    )
            else:
                for group in _groups(kernel, claimed):
                    if len(group) > 1:
                        names = " ".join(r.name for r in group)
                        echo(f"  packing {len(group)} trials: {names}")
                    execute(
                        backend,
                        group,
                        kernel,
                        results=results,
                        project=project,
                        echo=echo,
                        source=f"sweep {sweep_id}",
                        stop_check=check if early else None,
                        signals=signals,
                    )
            for record in claimed:
                result.states[record.state] += 1
                echo(_outcome_line(record, metric))
                if record.state == "preempted":
                    backend.requeue(record.id)
                    echo(f"  {record.name} queued again")
                failures = (
                    failures[-FAIL_LIMIT + 1 :] + [time.monotonic()]
                    if record.state == "failed"
                    else []
                )
                if len(failures) == FAIL_LIMIT and failures[-1] - failures[0] <= FAIL_WINDOW:
                    result.reason = (
                        f"{len(failures)} trials failed in a row within "
                        f"{FAIL_WINDOW:.0f}s; stopping this agent (last error: "
                        f"{(record.error or '').strip().splitlines()[-1]})"
                    )
                    result.failed_fast = True
            if result.failed_fast:
                break
        else:
            result.reason = f"count of {count} reached"
    return result


def run_single(
    backend: LocalBackend,
    kernel_name: str,
    overrides: dict[str, Any],
    *,
    results: Path,
    source: str,
    echo: Echo = print,
) -> RunRecord:
    """One run outside any sweep (``srsweep run``); bad overrides fail before it starts."""
    kernel = kernels.get(kernel_name)
    cfg = resolved(kernel, _config.build(kernel.config, overrides, source), backend, source)
    config = _config.to_dict(cfg)
    record = backend.start_run(kernel.name, config, agent_name())
    echo(f"{record.name} ({record.id}) {kernel.name}")
    t0 = time.monotonic()
    with _Signals().installed() as signals:
        execute(
            backend,
            [record],
            kernel,
            overrides=overrides,
            results=results,
            project="srsweep",
            echo=echo,
            source=source,
            signals=signals,
        )
    echo(_outcome_line(record, kernel.metric) + f" [{time.monotonic() - t0:.1f}s wall]")
    return record
