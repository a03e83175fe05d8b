from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from srsweep import store
from srsweep.reports import KERNEL_PLOTS
from srsweep.reports import kernel_figures
from srsweep.reports import write_report
from srsweep.reports.kernel_plots import success_colours

CYCLES = np.arange(0, 200, 2)
STN_FIGS = ["stn_x_range.png", "stn_dist.png", "stn_function.png"]
LAZY_FIGS = ["lazy_movement.png", "lazy_final_movement.png", "lazy_loss.png"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    return buf.getvalue()


@pytest.fixture
def stn_runs(fake_run, tmp_path):
    """Four stn runs: two with model files, one corrupt, one without a file."""

    def make(rid: str, init: float, end_dist: float, model: str | None):
        x_range = init + (2 - init) * (1 - np.exp(-CYCLES / 50))
        dist = end_dist + 3 * np.exp(-CYCLES / 30)
        history = [
            {"_step": int(c), "cycle": float(c), "x_range": float(x), "dist": float(d)}
            for c, x, d in zip(CYCLES, x_range, dist, strict=True)
        ]
        config = {"seed": 42, "init_x_range": init, "max_cycles": 200}
        path = None
        if model is not None:
            path = tmp_path / f"{rid}.joblib"
            if model == "ok":
                x = np.linspace(-2, 2, 100)
                store.save(
                    path,
                    {
                        "hyperparams": config,
                        "kernel": "stn",
                        "x_eval": x,
                        "f_eval": x**2 + 0.3,
                        "f_eval_clean": x**2 + end_dist,
                    },
                )
            else:
                path.write_bytes(b"truncated")
        return fake_run(
            id=rid,
            name=f"stn-{rid}",
            config=config,
            params={"init_x_range": init},
            summary={"dist": float(dist[-1])},
            history=history,
            model_path=None if path is None else str(path),
        )

    return [
        make("s0", 0.5, 0.1, "ok"),
        make("s1", 1.0, 2.0, "ok"),
        make("s2", 2.0, 0.2, "corrupt"),
        make("s3", 3.0, 0.3, None),
    ]


@pytest.fixture
def lazy_runs(fake_run):
    steps = np.arange(0, 200, 10)

    def make(alpha: float, width: int):
        grow = 1 - np.exp(-(steps + 1) / 50)
        history = [
            {
                "_step": int(s),
                "loss": float(0.07 * np.exp(-s / 40) + 0.02),
                "rel_move_last": float(g / alpha),
                "rel_move_all": float(0.1 * g / alpha / width),
            }
            for s, g in zip(steps, grow, strict=True)
        ]
        config = {"alpha": alpha, "width": width, "model": "deep"}
        return fake_run(
            id=f"a{alpha:g}w{width}",
            name=f"lazy-{alpha:g}-{width}",
            config=config,
            params={"alpha": alpha, "width": width},
            history=history,
        )

    return [make(a, w) for a in (1.0, 100.0) for w in (8, 32)]


def test_registry_names_the_study_kernels() -> None:
    assert set(KERNEL_PLOTS) == {"stn", "lazy", "srnet"}
    assert kernel_figures("sd", []) == ([], [])


def test_success_colours_follow_the_seed() -> None:
    col = success_colours({"good": 0.1, "fine": 0.6, "bad": 2.0, "none": float("nan")})
    assert col["good"][0] > col["good"][2] and col["fine"][0] > col["fine"][2]  # reds
    assert col["bad"][2] > col["bad"][0]  # blue
    assert col["none"] == to_rgba("0.6")
    assert sum(col["good"][:3]) > sum(col["fine"][:3])  # larger min dist: darker


def test_stn_figures_skip_unreadable_model_files(stn_runs, tmp_path) -> None:
    figs, notes = kernel_figures("stn", stn_runs)
    assert [name for name, _, _ in figs] == STN_FIGS
    assert len(notes) == 2
    assert f"stn-s2 (s2): {tmp_path / 's2.joblib'}: cannot read model file" in notes[0]
    assert notes[1] == "stn-s3 (s3): no model file recorded; skipped"
    (ax,) = figs[0][1].axes
    assert len(ax.get_lines()) == 4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "init_x_range=0.5 (n=1)"
    (ax,) = figs[1][1].axes
    assert ax.get_yscale() == "log"
    (ax,) = figs[2][1].axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 3 and labels[-1] == "x²"  # two readable runs and the target
    assert "2 of 4 runs" in figs[2][2] and "ε = 0" in figs[2][2]
    for _, fig, _ in figs:
        assert _png(fig).startswith(b"\x89PNG")


def test_lazy_figures(lazy_runs) -> None:
    figs, notes = kernel_figures("lazy", lazy_runs)
    assert [name for name, _, _ in figs] == LAZY_FIGS and notes == []  # no model file needed
    move = figs[0][1].axes
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in move)
    assert len(move[1].get_lines()) == 4
    assert move[1].get_lines()[0].get_xdata()[0] == 1  # step 0 is after one update
    legend = [t.get_text() for t in move[1].get_legend().get_texts()]
    assert legend[0] == "α=1, deep w=8"
    _, ax = figs[1][1].axes
    means = [ln for ln in ax.get_lines() if ln.get_label() in ("deep w=8", "deep w=32")]
    assert [ln.get_label() for ln in means] == ["deep w=8", "deep w=32"]
    assert list(means[0].get_xdata()) == [1.0, 100.0]
    y = means[0].get_ydata()
    assert y[0] / y[1] == pytest.approx(100.0)  # movement ∝ 1/α in the synthetic runs
    assert _png(figs[2][1]).startswith(b"\x89PNG")  # all three: the slow report test


def test_missing_metrics_are_a_note_not_an_error(lazy_runs) -> None:
    for r in lazy_runs:
        r.history = [{"_step": h["_step"], "loss": h["loss"]} for h in r.history]
    figs, notes = kernel_figures("lazy", lazy_runs)
    assert figs == [] and notes == [
        "lazy plots: no run logged rel_move_last, rel_move_all; none drawn"
    ]


@pytest.mark.slow
def test_write_report_adds_the_kernel_section(stn_runs, tmp_path) -> None:
    out = tmp_path / "rep"
    paths = write_report(
        stn_runs, out, metric="dist", goal="minimize", curve="x_range", avg_hor=10, kernel="stn"
    )
    assert [p.name for p in paths[-5:]] == [*STN_FIGS, "report.html", "report.md"]
    text = (out / "report.md").read_text()
    assert "## stn figures" in text
    for name in STN_FIGS:
        assert f"![{name}]({name})" in text
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "Skipped:" in text and f"{tmp_path / 's2.joblib'}: cannot read model file" in text
    assert "Traceback" not in text
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_write_report_draws_every_lazy_figure(lazy_runs, tmp_path) -> None:
    paths = write_report(
        lazy_runs, tmp_path, metric="loss", goal="minimize", curve="loss", avg_hor=10, kernel="lazy"
    )
    assert [p.name for p in paths[-5:]] == [*LAZY_FIGS, "report.html", "report.md"]
    text = (tmp_path / "report.md").read_text()
    assert "## lazy figures" in text and "Skipped" not in text
