"""Sweep reports: frames, seed replicates, trends, importance, trend drivers, figures,
``report.md`` and ``report.html``.

``report_sweep`` is the one call the CLI makes; ``write_report`` reports any runs given
the metric, goal and curve. The stages, in the order the pipeline runs them: ``read``
(the needed history columns, once, from the backend), ``frames`` (runs -> pandas),
``analysis.analyse`` (``seeds``, ``trends``, ``importance``, ``drivers``, ``best``) ->
figures (``plots``, ``hparam_plots``, ``interactive``) ->
``document`` blocks -> ``markdown`` and ``html``. The pieces are public for notebooks.
This package is the only place srsweep imports pandas, matplotlib, plotly, scikit-learn
and SciPy, so import it lazily from the CLI.
"""

from __future__ import annotations

from srsweep.reports.analysis import Study
from srsweep.reports.analysis import analyse
from srsweep.reports.drivers import trend_drivers
from srsweep.reports.frames import best_k
from srsweep.reports.frames import columns_frame
from srsweep.reports.frames import config_columns
from srsweep.reports.frames import exclude
from srsweep.reports.frames import format_value
from srsweep.reports.frames import history_frame
from srsweep.reports.frames import run_labels
from srsweep.reports.frames import runs_frame
from srsweep.reports.frames import smooth
from srsweep.reports.frames import varying_keys
from srsweep.reports.importance import importance
from srsweep.reports.kernel_plots import KERNEL_PLOTS
from srsweep.reports.kernel_plots import kernel_figures
from srsweep.reports.landscape import landscape_plot
from srsweep.reports.landscape import write_landscape
from srsweep.reports.levels import levels_of
from srsweep.reports.pipeline import report_sweep
from srsweep.reports.pipeline import write_report
from srsweep.reports.plots import comparison_plot
from srsweep.reports.plots import grouped_plot
from srsweep.reports.plots import save
from srsweep.reports.read import Logged
from srsweep.reports.read import read_logged
from srsweep.reports.seeds import config_ids
from srsweep.reports.seeds import config_trends
from srsweep.reports.trends import NO_DATA
from srsweep.reports.trends import SEED_DEPENDENT
from srsweep.reports.trends import TRENDS
from srsweep.reports.trends import characterise
from srsweep.reports.trends import classify

__all__ = [
    "report_sweep",
    "write_report",
    "analyse",
    "Study",
    "runs_frame",
    "history_frame",
    "columns_frame",
    "Logged",
    "read_logged",
    "varying_keys",
    "config_columns",
    "smooth",
    "best_k",
    "run_labels",
    "exclude",
    "format_value",
    "config_ids",
    "config_trends",
    "classify",
    "characterise",
    "importance",
    "trend_drivers",
    "levels_of",
    "TRENDS",
    "NO_DATA",
    "SEED_DEPENDENT",
    "comparison_plot",
    "grouped_plot",
    "save",
    "KERNEL_PLOTS",
    "kernel_figures",
    "landscape_plot",
    "write_landscape",
]
