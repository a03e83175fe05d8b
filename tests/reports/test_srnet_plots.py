"""The srnet figures, from synthetic runs shaped like a small 184 sweep."""

from __future__ import annotations

import io

import numpy as np
import pytest

from srsweep import store
from srsweep.reports import kernel_figures
from srsweep.reports import write_report

STEPS = np.arange(0, 2001, 25)


@pytest.fixture
def srnet_runs(fake_run, tmp_path):
    """Four runs over sd x sd_fun; the best (min_corr) has a model file, one has none."""

    def make(rid: str, sd: float, fun: str, corr_end: float, with_file: bool):
        val = 40 * np.exp(-STEPS / 400) + 0.1
        corr = corr_end * (1 - np.exp(-STEPS / 300))
        share = sd / (sd + 1) * (1 - np.exp(-STEPS / 500))
        history = [
            {
                "_step": int(s),
                "epoch": int(s),
                "val_loss": float(v),
                "min_corr": float(c),
                "sd_share": float(h) if sd > 0 else None,
            }
            for s, v, c, h in zip(STEPS, val, corr, share, strict=True)
        ]
        config = {"seed": 0, "sd": sd, "sd_fun": fun, "avg_hor": 100, "arch": {"lat_size": 3}}
        path = None
        if with_file:
            rng = np.random.default_rng(0)
            true = rng.normal(size=(200, 3))
            lat = true[:, [1, 0, 2]] * [2.0, -1.0, 0.5] + 0.1 * rng.normal(size=(200, 3))
            c = np.corrcoef(lat.T, true.T)[:3, 3:]
            path = tmp_path / f"{rid}.joblib"
            store.save(
                path,
                {
                    "hyperparams": config,
                    "kernel": "srnet",
                    "val_latents": lat,
                    "val_true": true,
                    "corr_mat": c,
                    "lat_var": "G07",
                },
            )
        return fake_run(
            id=rid,
            name=f"srnet-{rid}",
            config=config,
            params={"sd": sd, "sd_fun": fun},
            summary={"min_corr": float(corr[-1]), "val_loss": float(val[-1])},
            history=history,
            model_path=None if path is None else str(path),
        )

    return [
        make("a", 0.0, "linear", 0.6, False),
        make("b", 1e-4, "linear", 0.99, True),
        make("c", 1e-2, "sigmoid", 0.85, False),
        make("d", 1.0, "logsigmoid", 0.7, False),
    ]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    return buf.getvalue()


def test_srnet_figures(srnet_runs) -> None:
    figs, notes = kernel_figures("srnet", srnet_runs)
    names = [n for n, _, _ in figs]
    assert (
        names
        == ["srnet_by_sd.png", "srnet_by_sd_fun.png", "srnet_sd_share.png", "srnet_latents.png"]
        and notes == []
    )
    loss_ax, corr_ax = figs[0][1].axes
    assert loss_ax.get_yscale() == "log"
    legend = [t.get_text() for t in corr_ax.get_legend().get_texts()]
    assert legend == ["0 (n=1)", "1e-4 (n=1)", "1e-2 (n=1)", "1 (n=1)"]
    # smoothed over the runs' avg_hor (100 epochs = 4 logged points)
    thick = [ln for ln in corr_ax.get_lines() if ln.get_linewidth() > 2]
    raw = np.array([h["min_corr"] for h in srnet_runs[1].history])
    assert len(thick) == 4 and thick[1].get_ydata()[5] == pytest.approx(raw[2:6].mean())
    (share_ax,) = figs[2][1].axes
    assert len(share_ax.get_lines()) == 3  # the sd = 0 run has no SD share
    axes = figs[3][1].axes
    assert len(axes) == 3 and "srnet-b" in figs[3][2]
    assert axes[0].get_title().startswith("latent 0 vs G07[1]: r = 0.99")
    assert axes[1].get_title().startswith("latent 1 vs G07[0]: r = -0.99")
    for _, fig, _ in figs:
        assert _png(fig).startswith(b"\x89PNG")


def test_missing_model_files_and_sd_off_are_notes(srnet_runs) -> None:
    runs = [r for r in srnet_runs if r.id != "b"]
    for r in runs:
        r.history = [{k: v for k, v in h.items() if k != "sd_share"} for h in r.history]
    figs, notes = kernel_figures("srnet", runs)
    assert [n for n, _, _ in figs] == ["srnet_by_sd.png", "srnet_by_sd_fun.png"]
    assert notes[0] == "srnet_sd_share.png: no run had the SD term on (sd > 0); not drawn"
    assert notes[-1].startswith("srnet_latents.png: no run with min_corr has a readable model")


@pytest.mark.slow
def test_write_report_adds_the_srnet_section(srnet_runs, tmp_path) -> None:
    out = tmp_path / "rep"
    paths = write_report(
        srnet_runs, out, metric="min_corr", goal="maximize", curve="min_corr", kernel="srnet"
    )
    assert [p.name for p in paths[-3:]] == ["srnet_latents.png", "report.html", "report.md"]
    text = (out / "report.md").read_text()
    assert "## srnet figures" in text and "![srnet_sd_share.png](srnet_sd_share.png)" in text
    assert (out / "srnet_latents.png").read_bytes().startswith(b"\x89PNG")


def test_sd_share_goes_log_when_every_share_is_small(srnet_runs) -> None:
    (_, share_fig, _) = [f for f in kernel_figures("srnet", srnet_runs)[0] if "share" in f[0]][0]
    assert share_fig.axes[0].get_yscale() == "linear"  # shares up to 0.5: 0..1 shows them
    for r in srnet_runs:
        for h in r.history:
            if h["sd_share"] is not None:
                h["sd_share"] = 1e-5 + h["sd_share"] * 1e-3
    (_, share_fig, _) = [f for f in kernel_figures("srnet", srnet_runs)[0] if "share" in f[0]][0]
    assert share_fig.axes[0].get_yscale() == "log"
