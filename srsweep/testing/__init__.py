"""Helpers for srsweep's own tests and for people writing kernels."""

from srsweep.testing.fakes import RecordingRun

__all__ = ["RecordingRun"]
