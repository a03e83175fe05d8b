"""The kernel contract suite (``srsweep.testing.kernel_contract``) over every registered
kernel, the test-only ``toy`` included (tests/conftest.py registers it)."""

from __future__ import annotations

import dataclasses

import pytest

import srsweep.kernels
from srsweep.kernels import Examples
from srsweep.kernels import Kernel
from srsweep.testing.kernel_contract import KernelContract
from srsweep.testing.kernel_contract import examples_of


class TestKernelContract(KernelContract):
    @pytest.fixture(scope="class", params=srsweep.kernels.names(), ids=srsweep.kernels.names())
    @classmethod
    def kernel(cls, request: pytest.FixtureRequest) -> Kernel:
        return srsweep.kernels.get(request.param)

    @pytest.fixture(scope="class")
    @classmethod
    def examples(cls, kernel: Kernel) -> Examples:
        return examples_of(kernel)


def test_a_kernel_without_examples_fails_the_suite_saying_to_declare_them() -> None:
    bare = dataclasses.replace(srsweep.kernels.get("toy"), examples=None)
    with pytest.raises(pytest.fail.Exception, match="declares no examples: declare them"):
        examples_of(bare)
