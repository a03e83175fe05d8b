from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Analysis tests train and evaluate tiny nets with one intra-op thread, as the
    kernel tests do (``tests/kernels/conftest.py``): a second thread only adds
    synchronisation on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
