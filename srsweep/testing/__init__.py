"""Helpers for srsweep's own tests and for people writing kernels: tiny fake runs, the
toy kernel (``srsweep.testing.toy``) and the kernel contract suite
(``srsweep.testing.kernel_contract``, which needs pytest)."""

from __future__ import annotations

from srsweep.testing.fakes import FailingSave
from srsweep.testing.fakes import RecordingRun

__all__ = ["FailingSave", "RecordingRun"]
