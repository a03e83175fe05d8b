from __future__ import annotations

import io

import numpy as np
import pytest

from srsweep.reports import landscape_plot
from srsweep.reports.landscape import contour_levels


@pytest.fixture
def result() -> dict:
    """A landscape result shaped like ``analysis.landscape.compute``'s, without torch."""
    a, b = np.linspace(-2, 2, 21), np.linspace(-1, 1, 21)
    loss = 0.01 + np.add.outer(3 * b**2, a**2)  # (Nb, Na): bowl around θ*
    t = np.linspace(1, 0, 15)
    coords = np.stack([1.6 * t, 0.5 * np.sin(3 * t)], axis=1)
    steps = np.arange(15) * 10
    path = 0.01 + coords[:, 0] ** 2 + 3 * coords[:, 1] ** 2
    return {
        "steps": steps,
        "coords": coords,
        "distance": np.linalg.norm(coords, axis=1) + 0.01,
        "residual": np.full(15, 0.01),
        "explained_variance_ratio": np.array([0.8, 0.15]),
        "grid_a": a,
        "grid_b": b,
        "grid_loss": loss,
        "path_loss": path,
        "test_loss": path + 0.05,
        "plane_loss": path,
        "logged_loss": np.interp(np.arange(141), steps, path),
        "final_loss": np.asarray(0.01),
    }


def test_landscape_plot_labels_markers_and_panels(result) -> None:
    fig = landscape_plot(result, title="lazy run x")
    ax_map, ax_loss, ax_res, _colorbar = fig.axes
    assert ax_map.get_xlabel() == "1st PC: 80.00 %"
    assert ax_map.get_ylabel() == "2nd PC: 15.00 %"
    assert "95.0 % of variance" in ax_map.get_title()
    lines = {line.get_label(): line for line in ax_map.get_lines()}
    assert list(lines["start"].get_xydata()[0]) == pytest.approx(result["coords"][0])
    assert list(lines["end θ*"].get_xydata()[0]) == pytest.approx(result["coords"][-1])
    assert len(lines["trajectory"].get_xdata()) == 15
    assert ax_loss.get_yscale() == "log" and ax_res.get_yscale() == "log"
    labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert "held-out at checkpoints" in labels and "train at projection on plane" in labels
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    assert buf.getvalue().startswith(b"\x89PNG")


def test_reference_style_levels_can_be_given(result) -> None:
    levels = np.arange(0.1, 10, 0.5)  # the reference's plot_2D levels
    fig = landscape_plot(result, levels=levels)
    filled = fig.axes[0].collections[0]
    assert np.allclose(filled.levels, levels)


def test_contour_levels() -> None:
    lv, log = contour_levels(np.array([[1e-3, 1e-1], [1.0, 10.0]]))
    assert log and lv[0] == pytest.approx(1e-3) and lv[-1] == pytest.approx(10.0)
    assert np.allclose(np.diff(np.log(lv)), np.log(lv[1] / lv[0]))  # evenly log-spaced
    lv, log = contour_levels(np.array([0.0, 2.0]))  # a zero loss cannot be log-scaled
    assert not log and lv[0] == 0 and lv[-1] == 2
    lv, _ = contour_levels(np.full((3, 3), 0.5))  # flat: still strictly increasing
    assert (np.diff(lv) > 0).all()
