from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from srsweep.backends.local import LocalBackend
from srsweep.spec import validate

ToySweep = Callable[..., tuple[LocalBackend, str]]


@pytest.fixture
def toy_sweep() -> ToySweep:
    """Registers a sweep of the toy kernel: ``(root, parameters, method="grid", **spec)``
    -> (its ledger, the sweep id)."""

    def make(
        root: Path, params: dict[str, Any], method: str = "grid", **extra: Any
    ) -> tuple[LocalBackend, str]:
        b = LocalBackend(root)
        spec = validate({"program": "toy", "method": method, "parameters": params, **extra}, "t")
        return b, b.create_sweep(spec)

    return make
