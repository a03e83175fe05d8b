"""The training kernels, by name. Modules load lazily: torch is imported only when a
kernel is actually used, so ``srsweep --help`` stays fast."""

from __future__ import annotations

import importlib

from srsweep.errors import NotFoundError
from srsweep.kernels._base import Kernel
from srsweep.kernels._base import Run

__all__ = ["Kernel", "Run", "get", "names"]

# name -> module defining ``KERNEL``
_MODULES = {
    "sd": "srsweep.kernels.sd",
}


def names() -> list[str]:
    return sorted(_MODULES)


def get(name: str) -> Kernel:
    """The kernel called ``name``.

    Raises:
        NotFoundError: no such kernel; the message lists the known ones.
    """
    if name not in _MODULES:
        raise NotFoundError(f"unknown kernel {name!r}; known kernels: {', '.join(names())}")
    kernel: Kernel = importlib.import_module(_MODULES[name]).KERNEL
    return kernel
