"""srsweep: sweeps for small-network research (W&B-format specs, packed trials, an
offline ledger, reports).

The command line is ``srsweep`` (or ``python -m srsweep``).
"""

from importlib.metadata import version as _version

__version__ = _version("srsweep")

__all__ = ["__version__"]
