"""srsweep: sweeps for small-network research (W&B-format specs, packed trials, an
offline ledger, reports).

From Python, shaped like W&B's calls::

    import srsweep
    sweep_id = srsweep.sweep({"method": "grid", "parameters": {...}, ...})
    srsweep.agent(sweep_id, function=train, count=10)
    srsweep.runs(sweep_id)        # pandas frames, as the report reads them
    srsweep.report(sweep_id)      # the report's files

The command line is ``srsweep`` (or ``python -m srsweep``).
"""

import importlib
from importlib.metadata import version as _version
from typing import Any

__version__ = _version("srsweep")

__all__ = ["__version__", "agent", "history", "report", "runs", "sweep"]

_API = ("agent", "history", "report", "runs", "sweep")


def __getattr__(name: str) -> Any:
    # The API loads on first use, so the command line (which imports this package
    # first) does not pay for the agent and backends at every start.
    if name in _API:
        return getattr(importlib.import_module("srsweep.api"), name)
    raise AttributeError(f"module 'srsweep' has no attribute {name!r}")
