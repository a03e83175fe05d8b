"""One kernel trial's life: its config, its sinks, the kernel's training call (alone or
in a pack), and its outcome in the ledger.

A trial's outcome is always written, whatever happens inside the kernel: ``finished``,
``stopped`` (early termination or a stop request), ``failed`` (with the reason, or the
traceback of an unexpected error) or ``preempted`` (interrupted by a signal; queued
again). A re-run of an interrupted trial resumes from its last checkpoint when the
kernel takes one (``Run.resume_state``); its summary's ``resumed_from_step`` says where
it started (0: from scratch).
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import config as _config
from srsweep.agents.eta import SweepEta
from srsweep.agents.packing import limit_threads
from srsweep.agents.packing import threads_note
from srsweep.agents.signals import Heartbeat
from srsweep.agents.signals import training
from srsweep.errors import EnvironmentFault
from srsweep.errors import LeaseLostError
from srsweep.errors import SpecError
from srsweep.errors import SrsweepError
from srsweep.kernels import Entry
from srsweep.tracking import TrialRun
from srsweep.tracking import WandbSink

if TYPE_CHECKING:
    from srsweep.agents.signals import Signals
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord
    from srsweep.kernels import Kernel

__all__ = [
    "Echo",
    "execute",
    "last_saved",
    "lost_lease",
    "outcome_line",
    "params_line",
    "record_outcome",
    "resolved",
]

Echo = Callable[[str], None]
MAX_RESUME_HOPS = 10  # earlier attempts looked at for a state to resume from


def resolved(kernel: Kernel, cfg: Any, backend: Backend, source: str) -> Any:
    """``cfg`` with the runs it names (srnet's ``disc.from_run``) resolved to model files
    through this ledger: kernels never open the ledger themselves. Errors name ``source``
    (the sweep's run, ``--set``, ...), as config errors do."""
    if kernel.resolve is None:
        return cfg
    try:
        return kernel.resolve(cfg, backend.run)
    except SpecError as e:
        raise SpecError(source, e.violations) from None


def last_saved(backend: Backend, record: RunRecord, models: Path) -> Path | None:
    """The model file an interrupted trial's new attempt may resume from: that of the
    latest earlier attempt that was preempted or crashed (or lost while ``running``) and
    left one; None for a first attempt or a re-run of a failed one (it starts afresh)."""
    prev, hops = record.retry_of, 0
    while prev is not None and hops < MAX_RESUME_HOPS:
        hops += 1
        run = backend.run(prev)
        if run.state not in ("preempted", "crashed", "running"):
            return None
        path = Path(run.model_path) if run.model_path else models / f"{run.id}.joblib"
        if path.is_file():
            return path
        prev = run.retry_of  # it died before its first checkpoint: look further back
    return None


def record_outcome(backend: Backend, record: RunRecord, state: str, **fields: Any) -> None:
    """Write a trial's end (``Backend.finish``'s ``fields``); a preempted trial of a sweep
    has its next attempt queued in the same transaction, so that no kill can leave its grid
    point preempted and not queued (a run still ``running`` when its agent dies is queued
    again when its lease expires). LeaseLostError when another agent holds the trial."""
    requeue = state == "preempted" and record.sweep_id is not None
    backend.finish(record.id, state, requeue=requeue, **fields)


def _error_text(exc: BaseException) -> str:
    """A kernel's deliberate failure is its message; anything else keeps its traceback."""
    if isinstance(exc, SrsweepError):
        return str(exc)
    return "".join(traceback.format_exception(exc))


class _Trial:
    """One claimed trial's lifecycle: config, sinks and the outcome in the ledger."""

    def __init__(
        self,
        backend: Backend,
        record: RunRecord,
        kernel: Kernel,
        overrides: dict[str, Any],
        *,
        results: Path,
        project: str,
        echo: Echo,
        source: str,
        stop_check: Callable[[], str | None] | None,
        eta: SweepEta,
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
                resume_from=last_saved(backend, record, models),
                time_left=eta.text,
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
                state, error = "preempted", str(exc) or "interrupted"
            else:
                error = _error_text(exc)
        if isinstance(exc, LeaseLostError):
            return self.lost(exc)
        if isinstance(exc, EnvironmentFault):  # the ledger is gone: nothing to record in it
            raise exc
        summary: dict[str, Any] = {}
        try:
            if run is not None:
                run.flush()
                summary = dict(run.summary, runtime=round(run.elapsed(), 3))
                if record.retry_of is not None:  # a re-run says where it started: 0 is afresh
                    summary["resumed_from_step"] = run.resumed_from_step or 0
            record_outcome(
                self.backend,
                record,
                state,
                summary=summary,
                error=error,
                model_path=str(run.model_path) if run and run.saved else None,
            )
        except LeaseLostError as e:
            return self.lost(e)
        if self.sink is not None:
            self.sink.finish(state, summary, run.model_path if run and run.saved else None)
        record.state, record.error, record.summary = state, error, summary
        return record

    def lost(self, exc: LeaseLostError) -> RunRecord:
        if self.sink is not None:
            self.sink.finish("crashed", {}, None)
        return lost_lease(self.record, exc)


def lost_lease(record: RunRecord, exc: LeaseLostError) -> RunRecord:
    """A trial whose lease another agent took over: nothing more is recorded for it
    (the ledger holds it ``crashed`` and queued again); the agent goes on."""
    record.state, record.error = "crashed", f"lease lost: {exc}"
    return record


def execute(
    backend: Backend,
    records: list[RunRecord],
    kernel: Kernel,
    *,
    results: Path,
    project: str,
    echo: Echo,
    source: str,
    overrides: dict[str, Any] | None = None,
    stop_check: Callable[[str], str | None] | None = None,
    signals: Signals | None = None,
    eta: SweepEta | None = None,
) -> list[RunRecord]:
    """Run claimed trials to their end, alone (one record) or packed (several records of
    one ``pack_key``), and record each outcome in the ledger. Progress lines end with
    the time left for the trial, and for the sweep as ``eta`` knows it."""
    eta = eta or SweepEta()

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
            eta=eta,
        )
        for r in records
    ]
    ready = [t for t in trials if t.run is not None and t.error is None]
    outcomes: dict[int, BaseException | None] = {}
    interrupted: KeyboardInterrupt | None = None
    beat = Heartbeat(backend, [r.id for r in records])
    try:
        alone = len(ready) == 1 or kernel.train_packed is None
        path = kernel.train if alone else kernel.train_packed
        if isinstance(path, Entry):  # import its torch now, so that its threads can be set
            path.load()
        threads = limit_threads(not alone, peers=lambda: _peers(backend, records[0].agent))
        if threads is not None:
            echo(f"  on {threads_note(threads)}")
        try:
            with training(signals, [t.run for t in ready if t.run is not None]):
                _train(kernel, ready, alone, outcomes)
        except KeyboardInterrupt as e:  # a second signal: the trials still training end now
            interrupted = e
            for t in ready:
                outcomes.setdefault(id(t), e)
    finally:
        beat.stop()
        for t in trials:
            t.finish(outcomes.get(id(t)))
    if interrupted is not None and (signals is None or not signals.received):
        raise interrupted  # not the agent's signal handling: the caller's to handle
    return records


def _train(
    kernel: Kernel, ready: list[_Trial], alone: bool, outcomes: dict[int, BaseException | None]
) -> None:
    """Train ``ready`` (one by one, or as one pack), each one's outcome into ``outcomes``."""
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
            results = kernel.train_packed([t.cfg for t in ready], [t.run for t in ready])  # type: ignore[misc]
            outcomes.update({id(t): o for t, o in zip(ready, results, strict=True)})
        except Exception as e:  # the pack itself broke: every trial in it failed
            outcomes.update({id(t): e for t in ready})


def _peers(backend: Backend, me: str | None) -> int:
    """srsweep agents on this host training now, this one (``me``) included."""
    return len({*backend.agents_on(socket.gethostname()), me})


def params_line(params: dict[str, Any], keys: list[str]) -> str:
    """``key=value`` for each of ``keys`` (dotted) that ``params`` sets."""
    flat = _config.flatten(params)
    return " ".join(f"{k}={flat[k]}" for k in keys if k in flat)


def outcome_line(record: RunRecord, metric: str) -> str:
    """A finished trial in one line: its state, runtime, ``metric`` and last error line."""
    value = record.summary.get(metric)
    shown = f" {metric}={value:.4g}" if isinstance(value, float) else ""
    runtime = record.summary.get("runtime")
    took = f" in {runtime:.1f}s" if isinstance(runtime, float) else ""
    line = f"  {record.name} -> {record.state}{took}{shown}"
    if record.error and record.state == "failed":
        line += f": {record.error.strip().splitlines()[-1]}"
    return line
