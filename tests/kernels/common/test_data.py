from __future__ import annotations

import numpy as np
import pytest

from srsweep.errors import NotFoundError
from srsweep.kernels.common import data


def test_x10_first_row_matches_the_stored_file() -> None:
    np.testing.assert_allclose(data.inputs("X10")[0], [1.0367, -2.3828], atol=1e-4)


def test_shapes_follow_the_draw_table() -> None:
    assert data.inputs("X05").shape == (1000, 5)
    assert data.inputs("X06").shape == (1000, 8)
    assert data.inputs("X11").shape == (700, 1)


def test_x12_is_x07_and_x11_is_an_even_grid() -> None:
    np.testing.assert_array_equal(data.inputs("X12"), data.inputs("X07"))
    grid = data.inputs("X11")[:, 0]
    assert grid[0] == -3.0 and grid[-1] < 3.0
    np.testing.assert_allclose(np.diff(grid), 6.0 / 700)


def test_masks_split_700_200_100_in_the_recorded_order() -> None:
    m = data.masks("X10")
    assert m["train"][:5].tolist() == [993, 859, 298, 553, 672]
    assert [len(m[k]) for k in ("train", "val", "test")] == [700, 200, 100]
    assert m["train"].dtype == np.int64
    rows = np.concatenate([m["train"], m["val"], m["test"]])
    assert sorted(rows.tolist()) == list(range(1000))


def test_x11_has_no_mask_every_row_trains() -> None:
    m = data.masks("X11")
    assert m["train"].tolist() == list(range(700))
    assert len(m["val"]) == len(m["test"]) == 0


def test_sd_study_inputs_statistics() -> None:
    x = data.inputs("X10")[data.masks("X10")["train"], 0]
    assert x.shape == (700,)
    assert round(float(x.min()), 2) == -3.31
    assert round(float(x.max()), 2) == 2.91
    assert round(float(x.mean()), 3) == 0.040
    assert abs(float(x.std()) - 0.997) < 2e-3


def test_cached_arrays_are_read_only() -> None:
    with pytest.raises(ValueError):
        data.inputs("X10")[0, 0] = 1.0
    with pytest.raises(ValueError):
        data.masks("X10")["train"][0] = 1


def test_global_numpy_rng_is_left_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    data._normal_draws.cache_clear()
    data.inputs.cache_clear()
    data.inputs("X01")
    assert np.random.rand() == expected


def test_g07_and_f07_targets() -> None:
    x = data.inputs("X07")
    g = data.targets("G07")
    assert g.shape == (1000, 3)
    np.testing.assert_allclose(g[:, 1], 5 * np.cos(3 * x[:, 1]))
    np.testing.assert_allclose(data.targets("F07")[:, 0], g.sum(1))


def test_f11_target_combines_the_three_parabolas() -> None:
    x = data.inputs("X11")[:, 0]
    g = data.targets("G11")
    np.testing.assert_allclose(g[:, 0], -0.08 * (x + 0.165) ** 2 - 0.21)
    np.testing.assert_allclose(data.targets("F11")[:, 0], g[:, 0] * g[:, 1] + np.sin(g[:, 2]))


@pytest.mark.parametrize(
    "call", [data.inputs, data.masks, data.targets], ids=["inputs", "masks", "targets"]
)
def test_unknown_names_are_refused_with_the_known_ones(call: object) -> None:
    with pytest.raises(NotFoundError, match="X99.*known: "):
        call("X99")  # type: ignore[operator]


def test_x07_follows_the_recorded_draw_order_and_shares_the_mask() -> None:
    # symrep §2: one RandomState(0), normal draws in this order; X07 is the eighth.
    rng = np.random.RandomState(0)
    order = [
        ("X01", 2),
        ("X02", 2),
        ("X03", 3),
        ("X04", 3),
        ("X05", 5),
        ("X00", 2),
        ("X06", 8),
        ("X07", 2),
    ]
    drawn = {name: rng.normal(size=(1000, cols)) for name, cols in order}
    np.testing.assert_array_equal(data.inputs("X07"), drawn["X07"])
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(data.masks("X07")[split], data.masks("X10")[split])
