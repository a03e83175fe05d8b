"""The package's own surface: ``python -m srsweep`` and ``srsweep.__version__``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import srsweep
from srsweep import api


def test_version_is_the_installed_distributions():
    assert srsweep.__version__ == version("srsweep")
    assert "__version__" in srsweep.__all__


def test_python_dash_m_runs_the_cli_under_its_own_name():
    out = subprocess.run(
        [sys.executable, "-m", "srsweep", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"srsweep, version {srsweep.__version__}"


def test_the_program_ends_a_report_early_with_all_its_output(tmp_path: Path) -> None:
    # `srsweep report` as a program leaves without the interpreter's teardown
    # (cli._leave_now): what it printed and wrote must all be there, as in-process
    data = Path(__file__).parent / "backends" / "data"
    sid = json.loads((data / "v1_expected.json").read_text())["sweep_id"]
    shutil.copy(data / "v1_ledger.db", tmp_path / "srsweep.db")
    env = {**os.environ, "SRSWEEP_RESULTS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "srsweep", "report", sid, "--out", str(tmp_path / "program")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    listed = [Path(line.strip()) for line in lines[1:]]
    assert lines[0] == f"wrote {len(listed)} files to {tmp_path / 'program'}:"
    assert listed[-1].name == "report.md" and all(p.is_file() for p in listed)
    inline = api.report(sid, results=tmp_path, out=tmp_path / "inline", mirror=False)
    assert [p.name for p in inline] == [p.name for p in listed]
    for name in ("runs.csv", "history.csv", "report.md"):
        assert (tmp_path / "program" / name).read_text() == (tmp_path / "inline" / name).read_text()
