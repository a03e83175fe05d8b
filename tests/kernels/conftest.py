from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Kernel tests run with one intra-op thread, as the agent runs a lone trial: these
    nets are tiny, and a second thread only adds synchronisation on a shared 2-core
    machine. Packed and solo runs (the kernel contract suite's among them) are compared
    at this one count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
