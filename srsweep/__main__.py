"""``python -m srsweep``: the same command line as ``srsweep``."""

from srsweep.cli import main

main(prog_name="srsweep")
