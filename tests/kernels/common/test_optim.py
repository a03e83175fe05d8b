"""``optim.Adam`` must be torch's fused Adam, bit for bit, without building an Optimizer."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from srsweep.kernels.common.optim import Adam


def _train(make_opt, steps: int = 5):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1), nn.Linear(1, 1))
    frozen = net[2]  # never receives a gradient: both optimisers must skip it
    x = torch.randn(16, 3)
    opt = make_opt(net.parameters())
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (net[1](net[0](x)).sum(1) ** 2).mean()  # skips net[2] and net[3]
        loss.backward()
        opt.step()
    assert frozen.weight.grad is None
    return net, opt


def test_matches_torch_fused_adam_bit_for_bit() -> None:
    hyper = {"lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 1e-2}
    ours, ours_opt = _train(lambda p: Adam(p, **hyper))
    ref, ref_opt = _train(lambda p: torch.optim.Adam(p, **hyper, fused=True))
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, theirs = ours_opt.state_dict(), ref_opt.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    assert mine["state"].keys() == theirs["state"].keys() == {0, 1}  # stepped params only
    for k, s in theirs["state"].items():
        for name, value in s.items():
            assert torch.equal(mine["state"][k][name], value), (k, name)


def test_saved_state_loads_into_torch_adam() -> None:
    net, opt = _train(lambda p: Adam(p, lr=1e-2))
    ref = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    ref.load_state_dict(opt.state_dict())
    assert ref.state_dict()["state"][0]["step"].item() == 5


def test_does_not_import_dynamo() -> None:
    code = (
        "import sys, torch; from srsweep.kernels.common.optim import Adam; "
        "p = torch.zeros(2, requires_grad=True); o = Adam([p]); p.grad = torch.ones(2); "
        "o.step(); o.state_dict(); print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
