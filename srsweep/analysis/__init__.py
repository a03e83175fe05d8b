"""Analyses of saved runs, torch-side: ``landscape``, the loss landscape of a run's
weight trajectory in its PCA plane (seed 004). Each kernel that saves a trajectory
provides its own problem (``Kernel.landscape``); the figures are drawn by
``srsweep.reports.landscape``, which needs no torch."""

from __future__ import annotations

from srsweep.analysis import landscape

__all__ = ["landscape"]
