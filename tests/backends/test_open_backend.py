"""Which backend holds a sweep (``open_backend``), and registering one (``register_sweep``)."""

from __future__ import annotations

import pytest

from srsweep.backends import LocalBackend
from srsweep.backends import WandbBackend
from srsweep.backends import open_backend
from srsweep.backends import open_ledger
from srsweep.backends import register_sweep
from srsweep.errors import NotFoundError
from srsweep.errors import UsageError
from srsweep.testing.backend_contract import grid_spec


def test_a_local_sweep_is_in_the_ledger(results):
    sid = open_ledger(results).create_sweep(grid_spec(2))
    backend, got = open_backend(sid, results=results)
    assert isinstance(backend, LocalBackend) and got == sid
    assert backend.location == str(results / "srsweep.db")


def test_a_wandb_path_is_on_the_server(results):
    backend, got = open_backend("ent/proj/abc123", results=results)
    assert isinstance(backend, WandbBackend) and got == "ent/proj/abc123"
    assert not results.exists()  # the ledger was not even opened


def test_a_local_sweep_registered_on_wandb_is_on_the_server(results):
    sid = open_ledger(results).create_sweep(grid_spec(2), remote="ent/proj/abc123")
    backend, got = open_backend(sid, results=results)
    assert isinstance(backend, WandbBackend) and got == "ent/proj/abc123"


def test_a_reference_that_is_neither_is_refused(results):
    with pytest.raises(UsageError, match="'a/b': expected a local sweep id or ENTITY/PROJECT"):
        open_backend("a/b", results=results)
    with pytest.raises(NotFoundError, match="unknown sweep id 'nope'"):
        open_backend("nope", results=results)


def test_register_sweep_in_the_ledger(results):
    ledger = open_ledger(results)
    sweep = register_sweep(grid_spec(2), ledger)
    assert sweep.remote is None and ledger.sweeps() == [sweep]


def test_register_sweep_elsewhere_is_refused_before_anything_is_written(
    results, monkeypatch, tmp_path
):
    with pytest.raises(UsageError, match="server 'nope': expected one of local, wandb"):
        register_sweep(grid_spec(2), open_ledger(results), server="nope")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(UsageError, match="no W&B credentials"):
        register_sweep(grid_spec(2), open_ledger(results), server="wandb")
    assert not results.exists()
