"""The kernel contract: what every registered kernel does, stated once as a pytest suite.

Subclass ``KernelContract`` in a test module and give the subclass a class-scoped
``kernel`` fixture; every test is inherited::

    class TestKernelContract(KernelContract):
        @pytest.fixture(scope="class", params=srsweep.kernels.names())
        @classmethod
        def kernel(cls, request: pytest.FixtureRequest) -> Kernel:
            return srsweep.kernels.get(request.param)

The suite trains the configs the kernel's record declares (``Kernel.examples``, an
``Examples``): ``smoke`` (about a second on one CPU thread) and ``nonfinite``, and for a
kernel that packs, ``vary`` (each applied on top of ``smoke``) and ``other_key``. Run it
on CPU with one torch thread, as the agent runs a lone trial (srsweep's
tests/kernels/conftest.py pins it): packed and solo runs are compared at that count.
A solo run is trained once per class and reused (``srsweep.testing.trainer``); logged
keys in its ``WALL_CLOCK`` ("time") are seconds on the clock, left out of comparisons.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from srsweep import store
from srsweep.config import build
from srsweep.config import flat_fields
from srsweep.errors import KernelFailed
from srsweep.errors import SpecError
from srsweep.kernels import Examples
from srsweep.kernels import Kernel
from srsweep.testing.fakes import FailingSave
from srsweep.testing.fakes import RecordingRun
from srsweep.testing.trainer import Trainer
from srsweep.testing.trainer import assert_same_history
from srsweep.testing.trainer import examples_of
from srsweep.testing.trainer import unclocked

__all__ = ["KernelContract", "examples_of"]

STOP_AFTER = 2  # logs before a stopping run asks to stop
NONFINITE = re.compile(r"non-finite|\bnan\b|\binf\b", re.IGNORECASE)
WRONG_TYPE = [{"wrong": "type"}]  # a list of dicts: no field but an ``Any`` one takes it


class KernelContract:
    """What every kernel does; the subclass provides a class-scoped ``kernel`` fixture."""

    @pytest.fixture(scope="class")
    @classmethod
    def examples(cls, kernel: Kernel) -> Examples:
        return examples_of(kernel)

    @pytest.fixture(scope="class")
    @classmethod
    def trainer(cls, kernel: Kernel, examples: Examples) -> Trainer:
        return Trainer(kernel, examples)

    # --- config -------------------------------------------------------------------------

    def test_config_is_a_dataclass_whose_defaults_build(self, kernel: Kernel) -> None:
        """``kernel.config`` is a dataclass, and building it from no overrides gives its
        defaults."""
        assert isinstance(kernel.config, type) and dataclasses.is_dataclass(kernel.config)
        assert build(kernel.config, {}, "test") == kernel.config()

    def test_unknown_key_is_refused_by_its_dotted_name(self, kernel: Kernel) -> None:
        """An unknown key (inside a section, where the config has one) raises
        ``SpecError`` naming the dotted key."""
        fields = flat_fields(kernel.config)
        sections = [k.rpartition(".")[0] for k in fields if "." in k]
        key = f"{sections[0]}.no_such_key" if sections else "no_such_key"
        with pytest.raises(SpecError) as err:
            build(kernel.config, {key: 1}, "test")
        assert f"test: {key}: unknown key" in str(err.value)

    def test_wrong_type_is_refused_by_its_dotted_name(self, kernel: Kernel) -> None:
        """A value of the wrong type (on the most deeply nested typed field) raises
        ``SpecError`` naming the dotted key."""
        typed = [k for k, f in flat_fields(kernel.config).items() if f.type is not Any]
        assert typed, f"kernel {kernel.name!r}: its config has no typed field"
        key = max(typed, key=lambda k: k.count("."))
        with pytest.raises(SpecError) as err:
            build(kernel.config, {key: WRONG_TYPE}, "test")
        assert f"test: {key}: must be" in str(err.value)

    def test_examples_are_declared_and_build(self, kernel: Kernel, trainer: Trainer) -> None:
        """The record declares ``Examples`` (the ``examples`` fixture fails the suite
        otherwise) and each of them is a valid config."""
        ex = trainer.examples
        for over in (ex.smoke, ex.nonfinite, *map(trainer.on_smoke, ex.vary)):
            trainer.config(over)
        if ex.other_key is not None:
            trainer.config(ex.other_key)

    # --- solo training ------------------------------------------------------------------

    def test_deterministic_for_a_seed_on_cpu(self, kernel: Kernel, trainer: Trainer) -> None:
        """Two runs of the smoke example log the same history; another seed logs another."""
        assert "seed" in flat_fields(kernel.config), f"kernel {kernel.name!r}: no seed key"
        smoke = trainer.examples.smoke
        a, b = RecordingRun(), RecordingRun()
        kernel.train(trainer.config(smoke), a)
        kernel.train(trainer.config(smoke), b)
        assert a.history, "the smoke example logs nothing"
        assert unclocked(a) == unclocked(b)
        other = trainer.on_smoke({"seed": trainer.config(smoke).seed + 1})
        assert unclocked(trainer.finished(other)) != unclocked(a)

    def test_declares_what_it_logs(self, kernel: Kernel, trainer: Trainer) -> None:
        """``logs`` names every key the smoke run logs, the default metric and the curve
        (a spec's metric.name is checked against it)."""
        run = trainer.finished(trainer.on_smoke({}))
        logged = {k for row in run.history for k in row} - {"_step"}
        assert kernel.logs, f"kernel {kernel.name!r} declares no logs"
        assert logged <= set(kernel.logs), f"logged, not declared: {logged - set(kernel.logs)}"
        assert {kernel.metric, kernel.curve} <= set(kernel.logs)

    def test_nonfinite_loss_fails_the_trial_saying_so(self, trainer: Trainer) -> None:
        """The nonfinite example raises ``KernelFailed`` whose message says non-finite,
        NaN or inf, and saves nothing."""
        run, failed = trainer.solo(trainer.examples.nonfinite)
        assert failed is not None, "the nonfinite example trains without failing"
        assert NONFINITE.search(str(failed)), f"the message does not say why: {failed}"
        assert run.saved is None

    def test_stop_request_is_honoured(self, trainer: Trainer) -> None:
        """A run whose ``should_stop()`` turns True after k logs logs no further step:
        its steps are the first k of the full run's, and it still saves."""
        full = trainer.finished(trainer.examples.smoke)
        assert len(full.history) > STOP_AFTER, f"smoke must log over {STOP_AFTER} steps"
        stopped = trainer.finished(trainer.examples.smoke, stop_after=STOP_AFTER)
        want = [h["_step"] for h in full.history[:STOP_AFTER]]
        assert [h["_step"] for h in stopped.history] == want
        assert isinstance(stopped.saved, dict)

    def test_finished_run_saves_a_dict(self, trainer: Trainer) -> None:
        """A finished smoke run has called ``run.save`` with a dict."""
        assert isinstance(trainer.finished(trainer.examples.smoke).saved, dict)

    def test_saved_state_reads_back_from_a_model_file(
        self, trainer: Trainer, tmp_path: Path
    ) -> None:
        """What a finished smoke run saves, ``store.save`` writes and ``store.load``'s
        restricted unpickler reads back unchanged (builtins and NumPy arrays only)."""
        _assert_round_trip(trainer.finished(trainer.examples.smoke), tmp_path / "solo.joblib")

    # --- packed training ----------------------------------------------------------------

    def _assert_as_alone(
        self, trainer: Trainer, over: dict[str, Any], run: RecordingRun, stop: int | None = None
    ) -> None:
        alone = trainer.finished(over, stop)
        ex = trainer.examples
        assert_same_history(alone, run, ex.rtol, ex.atol, f"packed {over}")
        assert isinstance(run.saved, dict) and isinstance(alone.saved, dict)
        assert run.saved.keys() == alone.saved.keys(), f"packed {over}: saved other keys"

    def test_pack_of_one_equals_its_solo_run(self, trainer: Trainer) -> None:
        """A pack of the smoke trial alone logs and saves what the solo run does."""
        smoke, run = trainer.examples.smoke, RecordingRun()
        assert trainer.pack([smoke], [run]) == [None]
        self._assert_as_alone(trainer, smoke, run)

    def test_packed_state_reads_back_from_a_model_file(
        self, trainer: Trainer, tmp_path: Path
    ) -> None:
        """What a packed trial saves reads back from its model file as a solo run's does."""
        run = RecordingRun()
        assert trainer.pack([trainer.examples.smoke], [run]) == [None]
        _assert_round_trip(run, tmp_path / "packed.joblib")

    def test_packed_trials_equal_their_solo_runs(self, trainer: Trainer) -> None:
        """A pack of smoke and each ``vary`` trial: each trial logs what it logs alone,
        within ``Examples.rtol``/``atol``."""
        trials = [trainer.examples.smoke, *trainer.vary()]
        runs = [RecordingRun() for _ in trials]
        assert trainer.pack(trials, runs) == [None] * len(trials)
        for trial, run in zip(trials, runs, strict=True):
            self._assert_as_alone(trainer, trial, run)

    def test_bad_trial_fails_alone(self, trainer: Trainer) -> None:
        """A non-finite trial packed with two good ones fails as it fails alone (same
        message, same history, nothing saved); the others finish as they do alone."""
        bad = trainer.nonfinite_in_pack()
        trials = [trainer.examples.smoke, bad, trainer.vary()[0]]
        runs = [RecordingRun() for _ in trials]
        out = trainer.pack(trials, runs)
        alone, failed = trainer.solo(bad)
        assert out[0] is None and out[2] is None, out
        assert isinstance(out[1], KernelFailed) and str(out[1]) == str(failed)
        assert runs[1].saved is None
        ex = trainer.examples
        assert_same_history(alone, runs[1], ex.rtol, ex.atol, "the failed trial")
        for t in (0, 2):
            self._assert_as_alone(trainer, trials[t], runs[t])

    def test_stopped_trial_leaves_the_pack(self, trainer: Trainer) -> None:
        """A trial whose run asks to stop after k logs stops as it stops alone; the
        others go on to the end."""
        trials = [trainer.examples.smoke, *trainer.vary()[:2]]
        assert len(trainer.finished(trials[1]).history) > STOP_AFTER
        runs = [RecordingRun(), RecordingRun(stop_after=STOP_AFTER), RecordingRun()]
        assert trainer.pack(trials, runs) == [None] * 3
        self._assert_as_alone(trainer, trials[1], runs[1], stop=STOP_AFTER)
        for t in (0, 2):
            self._assert_as_alone(trainer, trials[t], runs[t])

    def test_failing_save_fails_its_trial_alone(self, trainer: Trainer) -> None:
        """A trial whose ``run.save`` raises gets that exception as its outcome; the
        others finish as they do alone."""
        trials = [trainer.examples.smoke, *trainer.vary()[:2]]
        runs = [RecordingRun(), FailingSave(), RecordingRun()]
        out = trainer.pack(trials, runs)
        assert out[0] is None and out[2] is None and isinstance(out[1], OSError), out
        for t in (0, 2):
            self._assert_as_alone(trainer, trials[t], runs[t])

    def test_configs_of_another_pack_key_are_refused(self, trainer: Trainer) -> None:
        """``train_packed`` with configs of different pack keys raises ValueError."""
        train_packed, ex = trainer.packed(), trainer.examples
        assert ex.other_key is not None, "a packing kernel declares Examples.other_key"
        assert trainer.key(ex.other_key) != trainer.key(ex.smoke), "other_key is in smoke's pack"
        cfgs = [trainer.config(ex.smoke), trainer.config(ex.other_key)]
        with pytest.raises(ValueError, match="pack_key"):
            train_packed(cfgs, [RecordingRun(), RecordingRun()])

    def test_mismatched_lengths_are_refused(self, trainer: Trainer) -> None:
        """``train_packed`` with more configs than runs (or fewer) raises ValueError."""
        train_packed, cfg = trainer.packed(), trainer.config(trainer.examples.smoke)
        with pytest.raises(ValueError):
            train_packed([cfg], [])
        with pytest.raises(ValueError):
            train_packed([cfg], [RecordingRun(), RecordingRun()])


def _assert_round_trip(run: RecordingRun, path: Path) -> None:
    """``run.saved`` written to ``path`` as ``TrialRun.save`` writes it, and read back
    equal: same types, dtypes, shapes and values, NaN matching NaN."""
    assert isinstance(run.saved, dict)
    loaded = store.load(store.save(path, {"hyperparams": {}, **run.saved}))
    _assert_same(run.saved, {k: loaded[k] for k in run.saved}, "saved")


def _assert_same(want: Any, got: Any, where: str) -> None:
    assert type(got) is type(want), f"{where}: read back a {type(got)}, saved a {type(want)}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: other keys read back"
        for k, v in want.items():
            _assert_same(v, got[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: {len(got)} items read back, {len(want)} saved"
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert got == want or (got != got and want != want), f"{where}: {got!r} != {want!r}"
