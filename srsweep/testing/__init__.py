"""Helpers for srsweep's own tests and for people writing kernels or ledger backends:
tiny fake runs, the toy kernel (``srsweep.testing.toy``), and the kernel and backend
contract suites (``srsweep.testing.kernel_contract``, ``.backend_contract``; they need
pytest)."""

from __future__ import annotations

from srsweep.testing.fakes import FailingSave
from srsweep.testing.fakes import RecordingRun

__all__ = ["FailingSave", "RecordingRun"]
