"""The ``Run`` object kernels see, and the sinks it feeds: the ledger and a wandb run.

Every run is also a W&B run: offline by default (``results/wandb``, uploadable with
``wandb sync``), online when ``WANDB_MODE=online``, skipped when ``WANDB_MODE=disabled``
(the tests). The ledger keeps its own copy of every metric so reports need no server.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import store

if TYPE_CHECKING:
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord
    from srsweep.kernels import Run

__all__ = ["TrialRun", "WandbSink", "wandb_mode"]


def wandb_mode() -> str:
    """``WANDB_MODE`` when set; online inside a W&B agent (it hands out the run);
    otherwise offline, so nothing ever waits on a network that may not be there."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_SWEEP_ID") else "offline"


class WandbSink:
    """Mirrors one run into wandb (config, metrics, summary, the model file as an
    artifact); a no-op when ``WANDB_MODE=disabled``."""

    def __init__(
        self, run: RunRecord, config: dict[str, Any], *, project: str, root: Path, group: str
    ) -> None:
        self._wb: Any = None
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
        self._wb = wandb.init(**kwargs)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._wb is not None:
            self._wb.log(metrics, step=step)

    def finish(self, state: str, summary: dict[str, Any], model: Path | None = None) -> None:
        if self._wb is not None:
            import wandb

            self._wb.summary.update({"state": state, **summary})
            if model is not None and model.is_file():
                art = wandb.Artifact(f"model-{self._wb.id}", type="model")
                art.add_file(str(model))
                self._wb.log_artifact(art)
            self._wb.finish(exit_code=0 if state in ("finished", "stopped") else 1)
            self._wb = None


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
        self._wandb = wandb_sink
        self._stop_check = stop_check
        self._progress = progress
        self._every = (check_every, progress_every, flush_every)
        now = time.monotonic()
        self._t0 = now
        self._last = [now, now, now]  # check, progress, flush
        self._pending: list[dict[str, Any]] = []

    # -- the Run protocol ------------------------------------------------------------
    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"_step": int(step), **{k: _scalar(v) for k, v in metrics.items()}}
        self.history.append(row)
        self._pending.append(row)
        self.summary.update({k: v for k, v in row.items() if k != "_step"})
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "_step"}, step=int(step))
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

    def save(self, state: dict[str, Any]) -> None:
        payload = {
            "hyperparams": self.config,
            **state,
            "metrics": list(self.history),
            "summary": dict(self.summary),
            "run_id": self.record.id,
            "sweep_id": self.record.sweep_id,
            "kernel": self.record.kernel,
        }
        store.save(self.model_path, payload)
        self.saved = True

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
        total = self.config.get("epochs")
        step = f"step {last['_step']}" + (f"/{total}" if total else "")
        shown = [f"{k}={_fmt(v)}" for k, v in last.items() if k not in ("_step", "epoch", "time")][
            :4
        ]
        return f"  {self.record.name} {step} {' '.join(shown)} ({self.elapsed():.0f}s)"


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
