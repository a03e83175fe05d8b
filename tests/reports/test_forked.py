"""The report's forked child: its result, its errors as the parent's own, and the same
files whether the figures are drawn in a child or inline."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

from srsweep.errors import SpecError
from srsweep.errors import UsageError
from srsweep.reports import forked
from srsweep.reports import write_report
from srsweep.reports.forked import Awaiting
from srsweep.reports.forked import Forked
from srsweep.reports.forked import Tickets


@pytest.fixture(autouse=True)
def _forks(request, monkeypatch):
    """Fork whatever threads earlier tests left running (wandb's, say), except in the
    tests of that choice: these test the child."""
    if "can_fork" not in request.fixturenames:
        monkeypatch.setattr(forked, "can_fork", lambda: True)


@pytest.fixture
def can_fork():
    """The real ``forked.can_fork``."""
    return forked.can_fork


def test_the_result_comes_back_from_the_child():
    parent = os.getpid()
    job = Forked(lambda: (os.getpid(), [1.5, "a"]))
    pid, value = job.result()
    assert pid != parent and value == [1.5, "a"]
    assert job.result() == (pid, value)  # collected once, kept


def test_an_error_in_the_child_is_raised_as_the_same_srsweep_error():
    def fail() -> None:
        raise SpecError("sweeps/sd.yaml", ["parameters.x: bad", "parameters.y: worse"])

    with pytest.raises(SpecError) as info:
        Forked(fail).result()
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert (
        str(info.value) == "sweeps/sd.yaml: parameters.x: bad\nsweeps/sd.yaml: parameters.y: worse"
    )
    assert info.value.violations == ["parameters.x: bad", "parameters.y: worse"]
    assert "in fail" in "".join(info.value.__notes__)  # the child's traceback, as a note


def test_a_result_that_cannot_be_sent_back_says_so():
    with pytest.raises(
        RuntimeError, match="the report's child process's result could not be sent back"
    ):
        Forked(lambda: lambda: None).result()


def test_tickets_are_taken_once_each_by_the_parent_and_the_child():
    with Tickets(300) as tickets:
        child = Forked(lambda: list(tickets))
        mine = list(tickets)
        theirs = child.result()
    assert sorted(mine + theirs) == list(range(300))


def test_a_child_that_dies_says_so():
    job = Forked(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(RuntimeError, match="killed by signal 9"):
        job.result()


def test_close_ends_a_child_still_running():
    job = Forked(lambda: signal.pause())
    pid = job._pid
    job.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # reaped


def test_without_fork_it_runs_inline(monkeypatch):
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    assert Forked(os.getpid).result() == os.getpid()
    with pytest.raises(UsageError, match="no"):
        Forked(lambda: (_ for _ in ()).throw(UsageError("no")))


def test_an_awaiting_child_prepares_at_once_then_takes_what_is_sent(tmp_path):
    started = tmp_path / "prepared"
    parent = os.getpid()

    def prepare():
        started.write_text(str(os.getpid()))
        return "fitted"

    big = list(range(100_000))  # far more than a pipe holds
    with Awaiting(prepare, lambda prepared, arg: (os.getpid(), prepared, sum(arg))) as job:
        for _ in range(500):  # before anything is sent
            if started.exists() and started.read_text():
                break
            time.sleep(0.01)
        assert int(started.read_text()) != parent
        job.send(big)
        pid, prepared, total = job.result()
    assert pid != parent and prepared == "fitted" and total == sum(big)


def test_an_awaiting_child_never_sent_anything_ends_with_close():
    job = Awaiting(lambda: None, lambda prepared, arg: arg)
    pid = job._job._pid
    job.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # reaped
    with pytest.raises(RuntimeError, match="before send"):
        Awaiting(lambda: None, lambda prepared, arg: arg).result()


def test_an_awaiting_childs_error_is_the_parents(monkeypatch):
    def fail(prepared, arg):
        raise UsageError(f"bad {arg}")

    with Awaiting(lambda: None, fail) as job, pytest.raises(UsageError, match="bad 3"):
        job.send(3)
        job.result()
    monkeypatch.setattr(forked, "can_fork", lambda: False)  # inline: raised by send
    with Awaiting(lambda: None, fail) as job, pytest.raises(UsageError, match="bad 4"):
        job.send(4)
    with Awaiting(lambda: os.getpid(), lambda prepared, arg: (prepared, arg)) as job:
        job.send("x")
        assert job.result() == (os.getpid(), "x")


def test_it_forks_only_on_linux_in_a_process_with_no_other_thread(can_fork, monkeypatch):
    monkeypatch.setattr(forked.threading, "active_count", lambda: 1)
    assert can_fork() == sys.platform.startswith("linux")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not can_fork()
    monkeypatch.setattr(sys, "platform", "linux")
    assert can_fork()
    monkeypatch.setattr(forked.threading, "active_count", lambda: 2)  # a kernel's thread
    assert not can_fork()


def test_the_files_are_the_same_drawn_in_a_child_or_inline(
    replicated_records, tmp_path, monkeypatch
):
    kw = dict(metric="avg_acc", goal="maximize", curve="acc", title="T", kernel="sd")
    child = write_report(replicated_records, tmp_path / "forked", **kw)
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    inline = write_report(replicated_records, tmp_path / "inline", **kw)
    assert [p.name for p in child] == [p.name for p in inline]
    for a, b in zip(child, inline, strict=True):
        if a.suffix == ".md":  # but the time it was generated
            assert _undated(a) == _undated(b)
        elif a.suffix != ".html":  # (its plotly divs have random ids)
            assert a.read_bytes() == b.read_bytes(), a.name


def _undated(path):
    return re.sub(r"Generated [^.]+\.", "", path.read_text())


def test_beside_another_thread_it_runs_inline(can_fork):
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not can_fork()
        assert Forked(os.getpid).result() == os.getpid()  # here, not in a child
    finally:
        stop.set()
        other.join()
