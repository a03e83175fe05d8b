"""Sweep reports: tidy frames, smoothed curves, the four trends, figures and Markdown.

``report_sweep`` is the one call the CLI makes; ``write_report`` reports any runs given
the metric, goal and curve; the pieces they are built from (``frames``, ``trends``,
``plots``, ``markdown``) are public for notebooks. This package is the only place
srsweep imports pandas and matplotlib, so import it lazily from the CLI.
"""

from __future__ import annotations

from srsweep.reports.frames import best_k
from srsweep.reports.frames import config_columns
from srsweep.reports.frames import exclude
from srsweep.reports.frames import format_value
from srsweep.reports.frames import history_frame
from srsweep.reports.frames import run_labels
from srsweep.reports.frames import runs_frame
from srsweep.reports.frames import smooth
from srsweep.reports.frames import varying_keys
from srsweep.reports.kernel_plots import KERNEL_PLOTS
from srsweep.reports.kernel_plots import kernel_figures
from srsweep.reports.landscape import landscape_plot
from srsweep.reports.landscape import write_landscape
from srsweep.reports.pipeline import report_sweep
from srsweep.reports.pipeline import write_report
from srsweep.reports.plots import comparison_plot
from srsweep.reports.plots import grouped_plot
from srsweep.reports.plots import save
from srsweep.reports.trends import NO_DATA
from srsweep.reports.trends import TRENDS
from srsweep.reports.trends import characterise
from srsweep.reports.trends import classify

__all__ = [
    "report_sweep",
    "write_report",
    "runs_frame",
    "history_frame",
    "varying_keys",
    "config_columns",
    "smooth",
    "best_k",
    "run_labels",
    "exclude",
    "format_value",
    "classify",
    "characterise",
    "TRENDS",
    "NO_DATA",
    "comparison_plot",
    "grouped_plot",
    "save",
    "KERNEL_PLOTS",
    "kernel_figures",
    "landscape_plot",
    "write_landscape",
]
