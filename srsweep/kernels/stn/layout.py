"""Where a packed ``stn`` trial's parameters live: the flat row layout of a
``HyperNet`` and the per-layer input buffers of the stacked forward pass (seeds 000, 001).

Layouts are feature-major, ``(n trials, features, samples)``. A ``HyperDense`` layer is
one ``bmm``: with gates folded into the weights, ``Weff = [W^T, b, kw·HW^T, kb·hb]``
(out, 2in+2), and ``u = [a, 1, a·h, h]`` (2in+2, samples), ``z = Weff @ u``. The trials'
parameters are rows of one flat ``theta``: the ``Weff`` blocks unscaled, then the gates,
so that ``Weff = P ⊙ (C + G @ E)``, with E a 0/1 matrix placing each gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

if TYPE_CHECKING:
    from srsweep.kernels.stn.config import STNConfig
    from srsweep.kernels.stn.hypernet import HyperNet

__all__ = ["PARAMS", "Inputs", "Layout"]

PARAMS = ("w", "hw", "kw", "b", "hb", "kb")  # a HyperDense's, in its state dict's order


class Layout:
    """Where each ``HyperDense`` parameter lives in a trial's row of ``theta``.

    Layer l's block ``P_l`` is (out, 2in+2) = ``[W^T, b, HW^T, hb]``; the gates follow
    all blocks, ``kw_l, kb_l`` of g values each (g = 1 per layer, or out per unit).
    """

    def __init__(self, cfg: STNConfig) -> None:
        W = cfg.M + 2
        sizes = [(1, W, False)] + [(W, W, True)] * (cfg.L + 1) + [(W, 1, False)]
        # per layer: in, out, relu, offset of P_l, offset of kw_l among the gates, g
        self.layers: list[tuple[int, int, bool, int, int, int]] = []
        at = g_at = 0
        for i, o, relu in sizes:
            g = o if cfg.gate == "unit" else 1
            self.layers.append((i, o, relu, at, g_at, g))
            at, g_at = at + o * (2 * i + 2), g_at + 2 * g
        self.Q, self.size = at, at + g_at
        # S = C + G @ E: 1 on the W and b columns, the gate on the HW and hb columns
        self.C = torch.zeros(self.Q, dtype=torch.float64)
        self.E = torch.zeros(g_at, self.Q, dtype=torch.float64)
        for i, o, _, off, kw, g in self.layers:
            cols = torch.arange(2 * i + 2)
            for r in range(o):
                row = off + r * (2 * i + 2) + cols
                self.C[row[: i + 1]] = 1
                self.E[kw + r % g, row[i + 1 : 2 * i + 1]] = 1
                self.E[kw + g + r % g, row[2 * i + 1]] = 1

    def row(self, net: HyperNet) -> torch.Tensor:
        """One trial's ``theta`` row from a ``HyperNet``."""
        state, blocks, gates = net.state_dict(), [], []
        for k in range(len(self.layers)):
            w, hw, kw, b, hb, kb = (state[f"layers.{k}.{x}"] for x in PARAMS)
            blocks.append(torch.cat([w.T, b[:, None], hw.T, hb[:, None]], 1).flatten())
            gates += [kw.flatten(), kb.flatten()]
        return torch.cat(blocks + gates)

    def state_dict(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """A ``theta`` row as ``HyperNet.state_dict()`` holds it (CPU copies)."""
        row, out = row.detach().cpu(), {}
        for k, (i, o, _, off, kw, g) in enumerate(self.layers):
            P = row[off : off + o * (2 * i + 2)].view(o, 2 * i + 2)
            gate = row[self.Q + kw : self.Q + kw + 2 * g].view(2, 1, g)
            w, hw, b, hb = P[:, :i].T, P[:, i + 1 : 2 * i + 1].T, P[:, i], P[:, 2 * i + 1]
            for name, x in zip(PARAMS, (w, hw, gate[0], b, hb, gate[1]), strict=True):
                out[f"layers.{k}.{name}"] = x.contiguous().clone()
        return out


class Inputs:
    """Work buffers for one number of columns (samples): each layer's input
    ``u = [a, 1, a·h, h]`` (n, 2in+2, cols), with views made once (slicing costs as much
    as an op on these sizes)."""

    def __init__(self, ins: list[int], n: int, cols: int, kw: dict[str, Any]) -> None:
        self.u = [torch.empty(n, 2 * i + 2, cols, **kw) for i in ins]
        for i, x in zip(ins, self.u, strict=True):
            x[:, i] = 1
        self.a = [x[:, :i] for i, x in zip(ins, self.u, strict=True)]
        self.a1 = [x[:, : i + 1] for i, x in zip(ins, self.u, strict=True)]  # [a, 1]
        self.ah = [x[:, i + 1 :] for i, x in zip(ins, self.u, strict=True)]  # [a·h, h]
        self.uT = [x.transpose(1, 2) for x in self.u]
