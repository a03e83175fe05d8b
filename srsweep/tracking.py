"""The ``Run`` object kernels see, and the sinks it feeds: the ledger and a wandb run.

Every run is also a W&B run: offline by default (``results/wandb``, uploadable with
``wandb sync``), online when ``WANDB_MODE=online``, skipped when ``WANDB_MODE=disabled``
(the tests). The ledger keeps its own copy of every metric so reports need no server.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import store
from srsweep.errors import SrsweepError

if TYPE_CHECKING:
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord
    from srsweep.kernels import Run

__all__ = [
    "CHECKPOINT_EVERY",
    "TrialRun",
    "WandbSink",
    "flush_wandb",
    "log_report",
    "report_run_id",
    "wandb_mode",
]

# seconds between a kernel's checkpoints: what a killed agent's trial can lose
CHECKPOINT_EVERY = 30.0


def wandb_mode() -> str:
    """``WANDB_MODE`` when set; online inside a W&B agent (it hands out the run);
    otherwise offline, so nothing ever waits on a network that may not be there."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_SWEEP_ID") else "offline"


class _Job:
    """Everything needed to write one W&B run after the fact."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.rows: list[tuple[dict[str, float], int]] = []
        self.summary: dict[str, Any] = {}
        self.model: Path | None = None
        self.exit_code = 0


def _write(job: _Job, wb: Any = None) -> None:
    """Write ``job`` as a W&B run (``wb``: the live run when there is one)."""
    import wandb

    if wb is None:
        wb = wandb.init(**job.kwargs)
        for metrics, step in job.rows:
            wb.log(metrics, step=step)
    wb.summary.update(job.summary)
    if job.model is not None and job.model.is_file():
        art = wandb.Artifact(f"model-{wb.id}", type="model")
        art.add_file(str(job.model))
        wb.log_artifact(art)
    wb.finish(exit_code=job.exit_code)


class _Mirror:
    """Writes offline W&B runs from a background thread, so a trial does not wait the
    ~150 ms a wandb run costs to open and close (the agent's per-trial budget is 50 ms).
    ``flush_wandb`` waits for it before the process exits."""

    def __init__(self) -> None:
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.errors: list[str] = []

    def submit(self, job: _Job) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, daemon=True, name="srsweep-wandb")
            self.thread.start()
        self.queue.put(job)

    def _work(self) -> None:
        while (job := self.queue.get()) is not None:
            try:
                _write(job)
            except Exception as e:  # a broken mirror must not lose the ledger's copy
                self.errors.append(f"{job.kwargs.get('id')}: {e}")
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def drain(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.queue.join()


_MIRROR = _Mirror()


def flush_wandb(echo: Callable[[str], None] | None = None) -> None:
    """Wait until every deferred offline W&B run is written (call before exiting)."""
    pending = _MIRROR.queue.unfinished_tasks
    if pending and echo is not None:
        echo(f"writing {pending} offline W&B run(s)...")
    _MIRROR.drain()
    if _MIRROR.errors and echo is not None:
        echo(f"warning: {len(_MIRROR.errors)} W&B run(s) not written: {_MIRROR.errors[0]}")


def report_run_id(sweep_id: str) -> str:
    """The W&B run that holds a sweep's report figures (one per sweep; a new report
    replaces the figures)."""
    return f"report_{sweep_id}"


def log_report(
    figures: Iterable[Path],
    *,
    sweep_id: str,
    title: str,
    project: str,
    root: Path,
    entity: str | None = None,
) -> str | None:
    """Log a report's figures as images of one W&B run, grouped with the sweep's runs
    (job type "report"), so they show next to them in the W&B UI: offline by default
    (``srsweep sync SWEEP_ID`` uploads it), nothing when W&B is disabled.

    Returns:
        The W&B mode it was logged in, or None when nothing was logged.
    """
    mode = wandb_mode()
    pngs = [p for p in figures if p.suffix == ".png" and p.is_file()]
    if mode == "disabled" or not pngs:
        return None
    import wandb

    root.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"mode": mode}  # a str, as WANDB_MODE gives it
    run = wandb.init(
        id=report_run_id(sweep_id),
        name=f"report: {title}",
        group=sweep_id,
        project=project,
        entity=entity,
        job_type="report",
        dir=str(root),
        reinit="finish_previous",
        settings=wandb.Settings(silent=True, console="off"),
        **kwargs,
    )
    run.log({p.stem: wandb.Image(str(p), caption=p.name) for p in pngs})
    run.finish()
    return mode


class WandbSink:
    """Mirrors one run into wandb (config, metrics, summary, the model file as an
    artifact); a no-op when ``WANDB_MODE=disabled``. Online, the run streams live;
    offline, it is written in the background once the trial ends."""

    def __init__(
        self, run: RunRecord, config: dict[str, Any], *, project: str, root: Path, group: str
    ) -> None:
        self._wb: Any = None
        self._job: _Job | None = None
        mode = wandb_mode()
        if mode == "disabled":
            return
        import wandb

        root.mkdir(parents=True, exist_ok=True)
        # under `wandb agent` the run id, project and sweep come from its environment
        kwargs: dict[str, Any] = (
            {}
            if os.environ.get("WANDB_SWEEP_ID")
            else {"id": run.id, "name": run.name, "group": group, "project": project}
        )
        kwargs.update(
            job_type=run.kernel,
            config=config,
            dir=str(root),
            mode=mode,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )
        self._job = _Job(kwargs)
        if mode != "offline":
            self._wb = wandb.init(**kwargs)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._wb is not None:
            self._wb.log(metrics, step=step)
        elif self._job is not None:
            self._job.rows.append((metrics, step))

    def finish(self, state: str, summary: dict[str, Any], model: Path | None = None) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        job.summary = {"state": state, **summary}
        job.model = model
        job.exit_code = 0 if state in ("finished", "stopped") else 1
        if self._wb is not None:
            _write(job, self._wb)
            self._wb = None
        else:
            _MIRROR.submit(job)


class TrialRun:
    """One trial's ``Run``: buffers metrics to the ledger, mirrors them to wandb, decides
    when to stop, and writes the model file.

    Args:
        record: the ledger row of this run.
        config: the resolved kernel config (nested), saved as ``hyperparams``.
        backend: the ledger.
        model_path: where ``save`` writes the joblib file.
        stop_check: called at most every ``check_every`` seconds; returns a reason to
            stop (e.g. "early-terminated by hyperband") or None.
        progress: called at most every ``progress_every`` seconds with a status line.
        resume_from: the model file of this trial's interrupted previous attempt, which
            ``resume_state`` offers the kernel.
        time_left: the time-left text the status line ends with, given the seconds so
            far, the last logged step and the steps the run takes (its config's
            ``epochs`` or ``steps``; None if it has neither).
    """

    def __init__(
        self,
        record: RunRecord,
        config: dict[str, Any],
        backend: Backend,
        model_path: Path,
        *,
        wandb_sink: WandbSink | None = None,
        stop_check: Callable[[], str | None] | None = None,
        progress: Callable[[str], None] | None = None,
        resume_from: Path | None = None,
        time_left: Callable[[float, int, int | None], str] | None = None,
        check_every: float = 2.0,
        progress_every: float = 5.0,
        flush_every: float = 2.0,
    ) -> None:
        self.record = record
        self.config = config
        self.backend = backend
        self.model_path = model_path
        self.history: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.saved = False
        self.resumed_from_step: int | None = None  # the first step trained, when resumed
        self._resume_from = resume_from
        self._wandb = wandb_sink
        self._stop_check = stop_check
        self._progress = progress
        self._time_left = time_left
        self._every = (check_every, progress_every, flush_every)
        now = time.monotonic()
        self._t0 = now
        self._last = [now, now, now, now]  # check, progress, flush, checkpoint
        self._pending: list[dict[str, Any]] = []

    # -- the Run protocol ------------------------------------------------------------
    def log(self, metrics: dict[str, float], step: int) -> None:
        self._record({"_step": int(step), **{k: _scalar(v) for k, v in metrics.items()}})
        now = time.monotonic()
        if now - self._last[2] >= self._every[2]:
            self.flush()
        if self._progress is not None and now - self._last[1] >= self._every[1]:
            self._last[1] = now
            self._progress(self.status_line())

    def should_stop(self) -> bool:
        if self.stop_reason is not None:
            return True
        now = time.monotonic()
        if self._stop_check is not None and now - self._last[0] >= self._every[0]:
            self._last[0] = now
            self.flush()  # the engine judges from the ledger
            self.stop_reason = self._stop_check()
        return self.stop_reason is not None

    def save(self, state: dict[str, Any], step: int | None = None) -> None:
        payload = {
            "hyperparams": self.config,
            **state,
            "metrics": list(self.history),
            "summary": dict(self.summary),
            "run_id": self.record.id,
            "sweep_id": self.record.sweep_id,
            "kernel": self.record.kernel,
        }
        if step is not None:
            payload["resume_step"] = int(step)
        store.save(self.model_path, payload)
        self.saved = True

    def checkpoint(self, state: Callable[[], dict[str, Any]], step: int) -> None:
        now = time.monotonic()
        if now - self._last[3] >= CHECKPOINT_EVERY:
            self.save(state(), step)
            self._last[3] = time.monotonic()  # the write's own time does not count

    def resume_state(self) -> dict[str, Any] | None:
        path, self._resume_from = self._resume_from, None  # offered once
        if path is None:
            return None
        try:
            payload = store.load(path)
        except SrsweepError as e:  # damaged or unreadable: the trial starts afresh
            self._say(f"  {self.record.name}: not resuming from {path} ({e})")
            return None
        step = payload.get("resume_step")
        same = (
            payload.get("hyperparams") == self.config
            and payload.get("kernel") == self.record.kernel
        )
        if not isinstance(step, int) or not same:
            return None
        for row in payload.get("metrics", []):
            if row.get("_step", step + 1) <= step:  # what the state includes, logged again
                self._record(dict(row))
        self.resumed_from_step = step + 1
        self._say(f"  {self.record.name} resumes at step {step + 1} from {path.name}")
        return payload

    def _record(self, row: dict[str, Any]) -> None:
        """``row`` into the history, the summary, the ledger's next flush and wandb."""
        self.history.append(row)
        self._pending.append(row)
        self.summary.update({k: v for k, v in row.items() if k != "_step"})
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "_step"}, step=row["_step"])

    def _say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    # -- agent side ------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def flush(self) -> None:
        self._last[2] = time.monotonic()
        if self._pending:
            self.backend.log(self.record.id, self._pending)
            self._pending = []

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def status_line(self) -> str:
        last = self.history[-1] if self.history else {"_step": 0}
        total = next((self.config[k] for k in ("epochs", "steps") if k in self.config), None)
        step = f"step {last['_step']}" + (f"/{total}" if total else "")
        shown = [f"{k}={_fmt(v)}" for k, v in last.items() if k not in ("_step", "epoch", "time")][
            :4
        ]
        elapsed = self.elapsed()
        steps = total if isinstance(total, int) and not isinstance(total, bool) else None
        left = self._time_left(elapsed, int(last["_step"]), steps) if self._time_left else ""
        took = f"{elapsed:.0f}s" + (f", {left}" if left else "")
        return f"  {self.record.name} {step} {' '.join(shown)} ({took})"


def _scalar(v: Any) -> Any:
    try:
        return float(v) if not isinstance(v, (int, bool)) else v
    except (TypeError, ValueError):
        return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


if TYPE_CHECKING:
    _: Run = TrialRun(None, {}, None, Path("."))  # type: ignore[arg-type]
