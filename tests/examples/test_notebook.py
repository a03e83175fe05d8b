"""The example notebook, executed in a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip(
    "nbclient", reason="nbclient is a dev dependency: pip install -e '.[dev]'"
)
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel", reason="ipykernel runs the notebook's kernel")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "sweep_in_a_notebook.ipynb"

pytestmark = pytest.mark.slow


def _text(cell: dict) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", ""))
        out.append(o.get("data", {}).get("text/plain", ""))
    return "".join(out)


def test_the_notebook_sweeps_a_function_and_a_kernel_and_shows_the_report(tmp_path):
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(NOTEBOOK, work)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "{'finished': 6} sweep finished: every grid point has run" in _text(code[1])
    table = _text(code[2])  # the runs frame: six finished runs, best first
    assert table.count("finished") == 6 and "momentum" in table
    assert "360 logged rows; [60] per run" in _text(code[3])
    assert "{'finished': 2}" in _text(code[4])
    shown = [o for o in code[5]["outputs"] if o.get("output_type") == "display_data"]
    assert any("image/png" in o["data"] for o in shown), "the comparison figure is not shown"
    assert any(
        "## Best 2 by avg_acc (maximize)" in o["data"].get("text/markdown", "") for o in shown
    )
    assert (work / "results" / "srsweep.db").exists()
