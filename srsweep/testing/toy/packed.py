"""The toy kernel's packing stand-in: it trains a pack's trials one by one, each failing
alone, and records the pack sizes (``PACKS``) for the agent tests."""

from __future__ import annotations

from srsweep.kernels import Run
from srsweep.kernels import check_pack
from srsweep.testing.toy.config import ToyConfig
from srsweep.testing.toy.config import pack_key
from srsweep.testing.toy.solo import train

__all__ = ["PACKS", "train_packed"]

PACKS: list[int] = []  # sizes of the packs trained, for the agent tests


def train_packed(cfgs: list[ToyConfig], runs: list[Run]) -> list[BaseException | None]:
    """Train the trials one by one; a trial's exception is its outcome, not the pack's."""
    check_pack(cfgs, runs, pack_key)
    PACKS.append(len(cfgs))
    out: list[BaseException | None] = []
    for cfg, run in zip(cfgs, runs, strict=True):
        try:
            train(cfg, run)
            out.append(None)
        except Exception as e:
            out.append(e)
    return out
