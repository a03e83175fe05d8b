"""``python -m srsweep``: the same command line as ``srsweep``."""

from srsweep.cli import run

run()
