"""What every launched agent runs: the sweep checked first, the ledger without its
password, the thread variables."""

from __future__ import annotations

import pytest

from srsweep.errors import NotFoundError
from srsweep.errors import UsageError
from srsweep.launch.target import ledger_env
from srsweep.launch.target import open_target
from srsweep.launch.target import split_password
from srsweep.launch.target import thread_env


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://me:s3cret@db:5432/sweeps", ("postgresql://me@db:5432/sweeps", "s3cret")),
        ("postgresql://me:p%40ss%3Aw@db/sweeps", ("postgresql://me@db/sweeps", "p@ss:w")),
        ("postgresql://me@db:5432/sweeps", ("postgresql://me@db:5432/sweeps", None)),
        ("/shared/results", ("/shared/results", None)),
        (None, (None, None)),
    ],
    ids=["password", "encoded", "no-password", "path", "none"],
)
def test_split_password(url, expected):
    assert split_password(url) == expected


def test_ledger_env_names_the_ledger_and_moves_its_password():
    assert ledger_env("postgresql://me:s3cret@db/sweeps") == {
        "SRSWEEP_LEDGER": "postgresql://me@db/sweeps",
        "PGPASSWORD": "s3cret",
    }
    assert ledger_env("/shared/results") == {"SRSWEEP_LEDGER": "/shared/results"}
    assert ledger_env(None) == {}


def test_thread_env_gives_a_cpu_pack_its_share_and_a_lone_trial_one_thread():
    assert thread_env(4, True, {}) == {
        "SRSWEEP_THREADS": "4",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
    }
    assert thread_env(4, False, {}) == {
        "SRSWEEP_THREADS": "1",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
    }
    assert thread_env(4, True, {"SRSWEEP_THREADS": "3", "MKL_NUM_THREADS": "2"}) == {
        "OMP_NUM_THREADS": "4"
    }  # the user's variables are kept


def test_open_target_finds_the_sweep_and_whether_its_packs_run_on_the_cpu(grid, results):
    _, sid = grid(results, 3)
    target, sqlite = open_target(sid, results, None, 8, 5)
    assert target.sweep_id == sid and target.results.is_absolute() and target.packs_on_cpu
    assert sqlite == (results / "srsweep.db").absolute()
    assert target.agent_args() == [
        "--results",
        str(results.absolute()),
        "agent",
        sid,
        "--pack",
        "8",
        "--count",
        "5",
    ]
    assert not open_target(sid, results, None, None, None)[0].packs_on_cpu  # CPU default: 1
    assert not open_target(sid, results, None, 1, None)[0].packs_on_cpu


@pytest.mark.parametrize(
    ("pack", "count", "message"),
    [(0, None, "--pack 0: expected 1 or more"), (None, -2, "--count -2: expected 1 or more")],
    ids=["pack", "count"],
)
def test_open_target_refuses_counts_below_one(grid, results, pack, count, message):
    _, sid = grid(results, 1)
    with pytest.raises(UsageError, match=message):
        open_target(sid, results, None, pack, count)


def test_open_target_refuses_an_unknown_sweep(results):
    with pytest.raises(NotFoundError, match="unknown sweep id 'nosuch'"):
        open_target("nosuch", results, None, None, None)
