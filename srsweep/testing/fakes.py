"""Tiny in-memory ``Run``s for kernel tests."""

from __future__ import annotations

from typing import Any

__all__ = ["FailingSave", "RecordingRun"]


class RecordingRun:
    """Keeps what a kernel logs and saves; asks to stop once it holds ``stop_after`` logs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.history: list[dict[str, float]] = []
        self.saved: dict[str, Any] | None = None
        self.stop_after = stop_after

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.history.append({"_step": step, **metrics})

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.history) >= self.stop_after

    def save(self, state: dict[str, Any]) -> None:
        self.saved = state

    def series(self, key: str) -> list[float]:
        return [h[key] for h in self.history if key in h]


class FailingSave(RecordingRun):
    """A ``RecordingRun`` whose ``save`` raises ``OSError`` (a full disk)."""

    def save(self, state: dict[str, Any]) -> None:
        raise OSError("disk full")
