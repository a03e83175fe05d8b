"""Tiny in-memory ``Run``s for kernel tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FailingSave", "RecordingRun"]


class RecordingRun:
    """Keeps what a kernel logs and saves; asks to stop once it holds ``stop_after`` logs;
    offers ``resume`` (another run's ``resumable``: what ``resume_state`` would hand over)
    to resume from. Every checkpoint is due."""

    def __init__(self, stop_after: int | None = None, resume: dict[str, Any] | None = None) -> None:
        self.history: list[dict[str, float]] = []
        self.saved: dict[str, Any] | None = None
        self.resumable: dict[str, Any] | None = None  # the last save or checkpoint with a step
        self.stop_after = stop_after
        self.resume = resume

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.history.append({"_step": step, **metrics})

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.history) >= self.stop_after

    def save(self, state: dict[str, Any], step: int | None = None) -> None:
        self.saved = state
        if step is not None:
            self.resumable = {**state, "resume_step": step}

    def checkpoint(self, state: Callable[[], dict[str, Any]], step: int) -> None:
        self.resumable = {**state(), "resume_step": step}

    def resume_state(self) -> dict[str, Any] | None:
        return self.resume

    def series(self, key: str) -> list[float]:
        return [h[key] for h in self.history if key in h]


class FailingSave(RecordingRun):
    """A ``RecordingRun`` whose ``save`` raises ``OSError`` (a full disk)."""

    def save(self, state: dict[str, Any], step: int | None = None) -> None:
        raise OSError("disk full")
