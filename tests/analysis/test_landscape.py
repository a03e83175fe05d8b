from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch.nn.utils import vector_to_parameters

from srsweep import store
from srsweep.analysis import landscape
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.config import build
from srsweep.config import to_dict
from srsweep.errors import CorruptFileError
from srsweep.errors import SpecError
from srsweep.errors import UsageError
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.lazy.config import LazyConfig
from srsweep.kernels.lazy.model import make_model
from srsweep.kernels.lazy.solo import train
from srsweep.testing.fakes import RecordingRun

TINY = {"steps": 300, "history_every": 10, "log_every": 1, "width": 6}
GRID = 11


def lazy_payload(**overrides: object) -> dict:
    cfg = build(LazyConfig, {**TINY, **overrides}, "test")
    run = RecordingRun()
    train(cfg, run)
    return {"hyperparams": to_dict(cfg), **run.saved, "kernel": "lazy", "run_id": "tiny"}


@pytest.fixture(scope="module")
def payload() -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return lazy_payload(alpha=10.0)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def result(payload: dict) -> dict:
    return landscape.compute(payload, grid=GRID)


def direct_loss(payload: dict, theta: torch.Tensor | None = None) -> float:
    """The kernel's MSE of α·(f_θ − f_θ0) on the training set, by hand, in float64."""
    cfg = build(LazyConfig, payload["hyperparams"], "test")
    net0 = make_model(cfg).double()
    net0.load_state_dict(to_tensors(payload["init_state"]))
    net = make_model(cfg).double()
    net.load_state_dict(to_tensors(payload["final_state"]))
    if theta is not None:
        vector_to_parameters(theta, net.parameters())
    x = torch.as_tensor(payload["x"], dtype=torch.float64).view(-1, 1)
    y = torch.as_tensor(payload["y"], dtype=torch.float64).view(-1, 1)
    with torch.no_grad():
        return F.mse_loss(cfg.alpha * (net(x) - net0(x)), y).item()


def test_pca_of_a_planar_trajectory_explains_everything_and_keeps_coordinates() -> None:
    rng = np.random.default_rng(0)
    u, v = np.linalg.qr(rng.normal(size=(40, 2)))[0].T  # orthonormal plane in R^40
    t = np.linspace(0, 1, 25)
    ab = np.stack([np.cos(3 * t) * (1 - t), 0.3 * np.sin(5 * t)], axis=1)  # (T, 2)
    rows = ab @ np.stack([u, v])
    pcs, ratio = landscape.pca_directions(rows)
    assert ratio.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(pcs @ pcs.T, np.eye(2), atol=1e-12)
    coords = rows @ pcs.T
    assert np.allclose(coords @ pcs, rows, atol=1e-12)  # nothing off the plane
    # The PCs span the same plane, so coordinates are the true ones up to a rotation.
    rot, *_ = np.linalg.lstsq(ab, coords, rcond=None)
    assert np.allclose(ab @ rot, coords, atol=1e-12)
    assert np.allclose(rot.T @ rot, np.eye(2), atol=1e-10)
    assert (coords[0] >= 0).all()  # the sign convention: the start projects non-negatively


def test_pca_centres_like_sklearn() -> None:
    rows = np.random.default_rng(1).normal(size=(30, 6)) + 5.0  # far from the origin
    _, ratio = landscape.pca_directions(rows)
    eig = np.sort(np.linalg.eigvalsh(np.cov(rows.T)))[::-1]
    assert np.allclose(ratio, eig[:2] / eig.sum())


def test_still_trajectory_is_an_error() -> None:
    with pytest.raises(UsageError, match="does not move"):
        landscape.pca_directions(np.ones((5, 3)))


def test_grid_centre_is_the_final_loss(payload: dict, result: dict) -> None:
    c = GRID // 2
    assert result["grid_a"][c] == 0 and result["grid_b"][c] == 0
    expected = direct_loss(payload)
    assert result["grid_loss"][c, c] == pytest.approx(expected, rel=1e-12)
    assert float(result["final_loss"]) == pytest.approx(expected, rel=1e-12)


def test_batched_grid_matches_a_plain_loop(payload: dict, result: dict) -> None:
    state = to_tensors(payload["final_state"])
    final = torch.cat([state[n].reshape(-1) for n, _ in payload["param_shapes"]])
    pcs = torch.as_tensor(result["pcs"])
    for i, j in [(0, 0), (2, 9), (10, 3), (7, 7)]:
        a, b = result["grid_a"][j], result["grid_b"][i]
        theta = final.double() + a * pcs[0] + b * pcs[1]
        assert result["grid_loss"][i, j] == pytest.approx(direct_loss(payload, theta), rel=1e-10)


def test_path_matches_the_training_run(payload: dict, result: dict) -> None:
    steps = result["steps"]
    assert steps[0] == 0 and list(steps[1:]) == list(payload["history_steps"] + 1)
    # Full-batch GD: the loss logged at step k is the loss after k updates.
    logged = payload["losses"][steps[steps < len(payload["losses"])]]
    assert np.allclose(result["path_loss"][: len(logged)], logged, rtol=1e-4)
    assert np.allclose(result["coords"][-1], 0, atol=1e-6)  # θ* is the origin
    assert result["residual"].shape == result["distance"].shape == steps.shape
    assert (result["residual"] <= result["distance"] + 1e-12).all()
    assert 0.5 < result["explained_variance_ratio"].sum() <= 1.0 + 1e-12
    # Grid axes cover the path, with margin.
    assert np.abs(result["coords"][:, 0]).max() < result["grid_a"][-1]
    assert np.isfinite(result["test_loss"]).all() and not np.allclose(
        result["test_loss"], result["path_loss"]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p.update(kernel="stn"),
            "x.joblib: kernel 'stn' saves no weight trajectory (only its final state), so it "
            "has no landscape path; kernels that save one: lazy",
        ),
        (lambda p: p.update(kernel="sd"), "x.joblib: kernel 'sd' saves no weight trajectory"),
        (
            lambda p: p.update(kernel="mystery"),
            "x.joblib: no landscape for kernel 'mystery'; kernels that save a weight "
            "trajectory: lazy",
        ),
        (
            lambda p: p.update(history=p["history"][:1]),
            "x.joblib: the run saved 1 weight snapshots, the landscape needs at least 2; "
            "re-run it with history_every > 0 (e.g. --set history_every=20)",
        ),
    ],
    ids=["stn", "sd", "unknown-kernel", "no-history"],
)
def test_runs_without_a_trajectory_are_usage_errors(payload: dict, change, message: str) -> None:
    bad = dict(payload)
    change(bad)
    with pytest.raises(UsageError) as err:
        landscape.compute(bad, source="x.joblib")
    assert str(err.value).startswith(message)


def test_bad_saved_hyperparameters_name_the_file(payload: dict) -> None:
    bad = {**payload, "hyperparams": {**payload["hyperparams"], "alpha": -1.0}}
    with pytest.raises(SpecError) as err:
        landscape.compute(bad, source="x.joblib")
    assert str(err.value) == (
        "x.joblib: alpha: must be > 0, but got -1.0 (allowed: 0 < alpha <= 1e+06)"
    )


def test_even_grid_is_rejected(payload: dict) -> None:
    with pytest.raises(UsageError, match="grid: must be an odd number"):
        landscape.compute(payload, grid=10)


def test_corrupt_file_names_its_path(tmp_path) -> None:
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a joblib file")
    with pytest.raises(CorruptFileError, match="bad.joblib"):
        landscape.compute_file(bad)


# -- the CLI -------------------------------------------------------------------------


@pytest.fixture
def cli(results):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["--results", str(results), *args], catch_exceptions=False)

    return invoke


@pytest.mark.slow
def test_cli_landscape_of_a_real_run(cli, results, tmp_path) -> None:
    sets = [f"--set={k}={v}" for k, v in {**TINY, "steps": 200}.items()]
    assert cli("run", "lazy", *sets).exit_code == 0
    (record,) = LocalBackend(results).runs(None, history=False)
    res = cli("landscape", record.id, "--grid", "9", "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    png = tmp_path / "out" / f"landscape_{record.id}.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "out" / f"landscape_{record.id}.npz").is_file()
    assert res.output.startswith(f"{record.id}: {png} (PCs explain ")
    assert "of the trajectory's variance" in res.output
    with np.load(tmp_path / "out" / f"landscape_{record.id}.npz") as z:
        r1, r2 = z["explained_variance_ratio"]
    assert f"{r1:.2%} + {r2:.2%}" in res.output


def test_cli_bad_ids_exit_2(cli, results, tmp_path) -> None:
    res = cli("landscape", "nosuchid")
    assert res.exit_code == 2 and "unknown run id 'nosuchid'" in res.stderr
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"garbage")
    res = cli("landscape", str(bad))
    assert res.exit_code == 2 and f"{bad}: cannot read model file" in res.stderr
    stn = tmp_path / "stn.joblib"
    store.save(stn, {"hyperparams": {}, "kernel": "stn", "model_state": {}})
    res = cli("landscape", str(stn))
    assert res.exit_code == 2 and f"{stn}: kernel 'stn' saves no weight trajectory" in res.stderr
    assert not (results / "landscape").exists()  # nothing written


def test_cli_refuses_a_file_that_would_run_code(cli, results, code_file) -> None:
    path, refused, marker = code_file
    res = cli("landscape", str(path))
    assert res.exit_code == 2
    assert res.stderr.startswith(f"Error: {path}: refused to load {refused}: ")
    assert not marker.exists() and not (results / "landscape").exists()


def test_trajectory_ends_in_the_lowest_region_of_its_contour(result: dict) -> None:
    grid = np.asarray(result["grid_loss"])
    c = GRID // 2
    lo, hi = float(grid.min()), float(grid.max())
    # the trained weights sit at the bottom of the plane's valley: within 1 % of the
    # lowest loss on the grid (the valley is flat along one direction, so a border point
    # can tie), far below the contour's range and the border's average
    assert grid[c, c] <= lo * 1.01
    assert grid[c, c] <= lo + 0.01 * (hi - lo)
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
    assert grid[c, c] < 0.5 * border.mean()
    # and the path starts higher up than it ends
    assert float(result["path_loss"][0]) > float(result["path_loss"][-1])
