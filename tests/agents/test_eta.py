"""Time-left estimates of the agent's progress lines."""

from __future__ import annotations

import pytest

from srsweep.agents.eta import SweepEta
from srsweep.agents.eta import duration_text
from srsweep.agents.eta import trial_left


def test_a_trial_is_projected_at_its_rate_so_far():
    assert trial_left(30.0, 10, 40) == pytest.approx(90.0)  # 3 s a step, 30 steps to go
    assert trial_left(30.0, 40, 40) == 0.0
    assert trial_left(30.0, 0, 40) is None  # no step has passed
    assert trial_left(30.0, 10, None) is None  # the trial's length is unknown


@pytest.mark.parametrize(
    "seconds, text",
    [(4.2, "4s"), (59.4, "59s"), (61, "1m"), (185, "3m"), (3599, "1h00m"), (11100, "3h05m")]
    + [(3 * 86400, "3.0d")],
)
def test_durations_read_at_a_glance(seconds, text):
    assert duration_text(seconds) == text


def test_the_sweep_waits_for_the_running_trials_then_packs_of_the_mean():
    eta = SweepEta(pack=2, waiting=4, durations=[100.0, 140.0])
    # 30 s left of this trial, then 4 trials in packs of 2 at 120 s each
    assert eta.sweep_left(90.0, 30.0) == pytest.approx(30 + 120 * 4 / 2)
    assert eta.text(90.0, 30, 40) == "~30s left, sweep ~4m left"
    # a trial of unknown length is taken to need the mean
    assert eta.sweep_left(90.0, None) == pytest.approx(30 + 240)
    assert eta.text(90.0, 30, None) == "sweep ~4m left"


def test_before_any_trial_finished_the_running_one_is_the_measure():
    eta = SweepEta(pack=1, waiting=2)
    assert eta.sweep_left(20.0, 60.0) == pytest.approx(60 + 80 * 2)
    assert eta.sweep_left(20.0, None) is None
    assert eta.text(20.0, 5, None) == ""


def test_a_sweep_of_unknown_size_says_only_the_trials_time():
    eta = SweepEta(pack=1, waiting=None, durations=[10.0])
    assert eta.text(10.0, 5, 10) == "~10s left"
