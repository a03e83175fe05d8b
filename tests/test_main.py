"""The package's own surface: ``python -m srsweep`` and ``srsweep.__version__``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import srsweep


def test_version_is_the_installed_distributions():
    assert srsweep.__version__ == version("srsweep")
    assert "__version__" in srsweep.__all__


def test_python_dash_m_runs_the_cli_under_its_own_name():
    out = subprocess.run(
        [sys.executable, "-m", "srsweep", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"srsweep, version {srsweep.__version__}"
