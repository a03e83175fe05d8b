"""The SRNet and its DSN halves: masks, Jacobians, init and alpha modes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from srsweep.config import build
from srsweep.config import layered
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.dsn import DSN
from srsweep.kernels.srnet.shared import build_model

F07_MASK = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
TINY: dict[str, Any] = {"device": "cpu", "arch": {"hid_num": [2, 0], "hid_size": 8}}


def cfg_of(**over: Any) -> SRNetConfig:
    cfg: SRNetConfig = build(SRNetConfig, layered(TINY, over), "test")
    return cfg


def x_small(n: int = 6, cols: int = 2) -> torch.Tensor:
    return torch.randn(n, cols, generator=torch.Generator().manual_seed(3))


def test_dsn_mask_restricts_which_inputs_reach_a_latent() -> None:
    model = build_model(cfg_of())
    x = x_small(50)
    _, lat, jac = model(x, jacobian=True)
    assert jac is not None and jac.shape == (50, 3, 2)
    assert (jac[:, 0, 1] == 0).all() and (jac[:, 1, 0] == 0).all()  # exactly, every row
    assert (jac[:, 0, 0] != 0).any() and (jac[:, 1, 1] != 0).any() and (jac[:, 2] != 0).all()
    # autograd agrees, and moving x1 leaves latent 0 untouched (and x0, latent 1)
    auto = torch.func.vmap(torch.func.jacrev(lambda r: model(r[None])[1][0]))(x)
    assert (auto[:, 0, 1] == 0).all() and (auto[:, 1, 0] == 0).all()
    moved = model(x + torch.tensor([0.0, 1.0]))[1]
    assert torch.equal(moved[:, 0], lat[:, 0]) and not torch.equal(moved[:, 1], lat[:, 1])


@pytest.mark.parametrize(
    "arch",
    [
        {"hid_type": ["MLP", "MLP"], "hid_num": [2, 1]},
        {"hid_type": ["DSN", "MLP"], "hid_num": [2, 0], "hid_kwargs": {"alpha": None}},
        {
            "hid_type": ["DSN", "DSN"],
            "hid_num": [0, 1],
            "hid_kwargs": {"alpha": [None, -1], "norm": "softmax"},
        },
    ],
    ids=["mlp", "dsn-trainable-alpha", "dsn-softmax-no-hidden"],
)
def test_latent_jacobian_matches_jacrev(arch: dict[str, Any]) -> None:
    model = build_model(cfg_of(arch=arch))
    x = x_small(7)
    pred, lat, jac = model(x, jacobian=True)
    auto = torch.func.vmap(torch.func.jacrev(lambda r: model(r[None])[1][0]))(x)
    assert jac is not None and jac.shape == auto.shape == (7, 3, 2)
    torch.testing.assert_close(jac, auto, rtol=1e-5, atol=1e-6)
    assert pred.shape == (7, 1) and lat.shape == (7, 3)


def test_dsn_init_and_alpha_modes() -> None:
    torch.manual_seed(0)
    dsn = DSN(2, 3, hid_num=2, hid_size=200, alpha=None)
    assert all((b == 0).all() for b in dsn.biases)  # zero biases: kinks at x = 0
    w = dsn.weights[1]  # 200 -> 200: std sqrt(6 / 400)
    assert abs(float(w.detach().std()) - (6 / 400) ** 0.5) < 0.01
    assert any(p is dsn.alpha for p in dsn.parameters())  # None: trainable
    frozen = DSN(2, 3, 1, 4, alpha=-1)
    assert all(p is not frozen.alpha for p in frozen.parameters()) and frozen.alpha.shape == (3, 2)
    given = DSN(2, 3, 1, 4, alpha=F07_MASK)
    assert given.alpha.tolist() == [list(r) for r in F07_MASK]
    assert all(p is not given.alpha for p in given.parameters())


def test_softmax_norm_and_prune() -> None:
    dsn = DSN(2, 2, 1, 4, alpha=((2.0, -2.0), (0.0, 3.0)), norm="softmax")
    torch.testing.assert_close(dsn.mask().sum(1), torch.ones(2))
    assert dsn.mask()[0, 0] == dsn.mask()[0, 1]  # softmax of |alpha|
    pruned = DSN(2, 2, 1, 4, alpha=((1.0, 0.05), (0.2, 1.0)), prune=0.1)
    torch.testing.assert_close(pruned.mask(), torch.tensor([[1.0, 0.0], [0.2, 1.0]]))
    assert DSN(2, 1, 1, 4, alpha=((1.0, 0.0),)).entropy().item() == 0.0
    assert DSN(2, 1, 1, 4, alpha=((1.0, 1.0),)).entropy().item() == pytest.approx(1.0)
