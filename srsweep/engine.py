"""Suggestions and early termination: a pure wrapper around W&B's ``sweeps`` engine.

``(spec, runs, n) -> suggestions`` and ``(spec, runs) -> runs to stop``, with no files,
network or clock, so the same spec behaves the same locally and on a W&B server.
"""

from __future__ import annotations

import functools
import math
import random
import re
import warnings
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import numpy as np

from srsweep.errors import EngineError
from srsweep.limits import grid_violation

__all__ = [
    "EngineRun",
    "suggest",
    "suggest_packed",
    "to_stop",
    "plain",
    "import_sweeps",
    "leaf_violations",
]


def import_sweeps() -> Any:
    """``import sweeps`` without the pydantic-2 warning its v1-style config triggers
    (harmless, but users see it on every command)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
        import sweeps.config.cfg  # noqa: F401 - the JSON-schema validator spec.py uses

        import sweeps
    return sweeps


# ledger state -> sweeps.RunState; an early-stopped run still holds finished data
_STATES = {
    "running": "running",
    "finished": "finished",
    "stopped": "finished",
    "failed": "failed",
    "crashed": "crashed",
    "preempted": "preempted",
    "killed": "killed",
}


class EngineRun(Protocol):
    """What the engine needs to know of a run (``RunRecord`` fits)."""

    id: str
    state: str
    params: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]


def plain(value: Any) -> Any:
    """numpy scalars and arrays -> Python types, recursively (sweeps returns numpy)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class _Draws:
    """A sweep's next suggestions from sweeps, drawn as they are asked for: ``first(n)``
    is the first ``n`` (fewer when a grid runs out), whether drawn in one step or in
    several. sweeps draws from the global ``random`` (random search) and numpy (bayes)
    RNGs; these draws keep RNG states of their own, seeded with ``seed``, and leave the
    global ones as they were. A grid or random search draws many in one call of sweeps
    (the same ones as one call each, without building its parameters each time: ~50 ms
    for the sd study); bayes one at a time, each seeing those before it as running."""

    def __init__(self, spec: dict[str, Any], runs: Sequence[EngineRun], seed: int) -> None:
        too_big = grid_violation(spec)
        if too_big:  # sweeps would build the list of every point
            raise EngineError(too_big)
        import_sweeps()
        _install_hash_cache()
        self.spec = spec
        self.drawn: list[dict[str, Any]] = []
        self.history = _sweep_runs(runs, with_history=False)
        self.batch = spec.get("method") in ("grid", "random")
        self.ended = False
        outer = np.random.get_state(), random.getstate()
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.rng = np.random.get_state(), random.getstate()
        np.random.set_state(outer[0])
        random.setstate(outer[1])

    def first(self, n: int) -> list[dict[str, Any]]:
        sweeps = import_sweeps()
        outer = np.random.get_state(), random.getstate()
        np.random.set_state(self.rng[0])
        random.setstate(self.rng[1])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sweeps' bayes search warns on tiny data
                while len(self.drawn) < n and not self.ended:
                    self._more(sweeps, n - len(self.drawn) if self.batch else 1)
        finally:
            self.rng = np.random.get_state(), random.getstate()
            np.random.set_state(outer[0])
            random.setstate(outer[1])
        return self.drawn[:n]

    def _more(self, sweeps: Any, n: int) -> None:
        try:
            got = sweeps.next_runs(self.spec, self.history, validate=False, n=n)
        except Exception as e:  # jsonschema, ValueError, KeyError... of a bad spec
            raise _refused(e, self.spec) from None
        for suggestion in got or [None]:  # (none at all: the engine has no more)
            if suggestion is None:
                self.ended = True
                return
            self.drawn.append(plain({k: v["value"] for k, v in suggestion.config.items()}))
            suggestion.state = "running"
            self.history.append(suggestion)


def _canon(value: Any) -> Any:
    """A hashable key that tells apart every value yaml_hash could tell apart."""
    if isinstance(value, dict):
        return ("d", tuple(sorted((str(k), _canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_canon(v) for v in value))
    return (type(value).__name__, value)


_hash_cache: dict[Any, str] = {}


def _install_hash_cache() -> None:
    """sweeps' grid search YAML-dumps every grid point and every run's values on every
    call (~0.3 ms each): memoise it, or claiming from a 500-point grid costs O(n) dumps
    per trial. The result is the same function of the value, only computed once."""
    from sweeps import grid_search  # type: ignore[attr-defined]

    original = grid_search.yaml_hash
    if getattr(original, "_srsweep_cached", False):
        return

    def cached(value: Any) -> str:
        key = _canon(value)
        if key not in _hash_cache:
            _hash_cache[key] = original(value)
        return _hash_cache[key]

    cached._srsweep_cached = True  # type: ignore[attr-defined]
    grid_search.yaml_hash = cached


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without NaN and infinities: to the engine a non-finite metric is a
    missing one, which bayes imputes as the worst value (``metric.impute``, W&B's default
    ``worst``) and hyperband counts as not reaching its bands."""
    return {k: v for k, v in values.items() if not (isinstance(v, float) and not math.isfinite(v))}


def _sweep_runs(runs: Sequence[EngineRun], with_history: bool) -> list[Any]:
    sweeps = import_sweeps()

    return [
        sweeps.SweepRun(
            name=r.id,
            state=_STATES.get(r.state, "running"),
            config={k: {"value": v} for k, v in r.params.items()},
            summary_metrics=_finite(r.summary),
            history=[_finite(h) for h in r.history] if with_history else [],
        )
        for r in runs
    ]


def suggest(
    spec: dict[str, Any], runs: Sequence[EngineRun], n: int = 1, *, seed: int
) -> list[dict[str, Any]]:
    """The next ``n`` parameter sets (nested dicts), fewer when a grid is exhausted.

    Args:
        spec: the W&B sweep dict (validated).
        runs: every run the sweep has so far, any state (a grid never repeats them).
        n: how many suggestions.
        seed: seeds random/bayes draws, so a ledger replays the same suggestions.

    Raises:
        EngineError: the spec cannot be searched (e.g. a continuous parameter in a grid,
            a grid of more than ``limits.MAX_GRID`` points, a malformed distribution).
    """
    return _Draws(spec, runs, seed + len(runs)).first(_room(spec, runs, n))


def suggest_packed(
    spec: dict[str, Any],
    runs: Sequence[EngineRun],
    n: int,
    *,
    seed: int,
    key: Callable[[dict[str, Any]], Hashable],
    candidates: int,
    first: Sequence[Hashable] = (),
) -> list[dict[str, Any]]:
    """Up to ``n`` suggestions with as few distinct ``key`` values among them as it
    takes: those of the first suggestion's key, then of the first one left's key, and
    so on (``first``: keys to take before those, e.g. of re-runs already claimed).

    It draws ``n`` suggestions, and more (twice as many in all, each time) until one
    key (or the keys of ``first``) fills them or ``candidates`` were drawn. A key is
    chosen by the draw that comes first, not by how many share it, so each key keeps
    its share of a random sweep's trials. The rest are dropped: random and bayes draws
    are fresh ones, and a grid suggests the points not taken again next time.
    ``run_cap`` bounds what is returned, not the candidates. Raises ``EngineError`` as
    ``suggest`` does.
    """
    room = _room(spec, runs, n)
    if room == 0:
        return []
    draws = _Draws(spec, runs, seed + len(runs))
    keys: list[Hashable] = []
    want, lead = room, len(dict.fromkeys(first))
    while True:
        drawn = draws.first(want)
        keys += [key(p) for p in drawn[len(keys) :]]
        out: list[dict[str, Any]] = []
        used = 0  # how many keys it took from
        for k in dict.fromkeys([*first, *keys]):  # in the order they come
            if len(out) == room:
                break
            used += 1
            out += [p for p, pk in zip(drawn, keys, strict=True) if pk == k][: room - len(out)]
        if used <= max(1, lead) or len(drawn) < want or want >= candidates:
            return out
        want = min(2 * want, candidates)


def _room(spec: dict[str, Any], runs: Sequence[EngineRun], n: int) -> int:
    """``n``, or fewer where the spec's ``run_cap`` leaves less."""
    run_cap = spec.get("run_cap")
    return n if run_cap is None else max(0, min(n, int(run_cap) - len(runs)))


def _implied(leaf: dict[str, Any]) -> str:
    """The distribution sweeps assumes for a parameter that names none."""
    if "value" in leaf:
        return "constant"
    if "values" in leaf:
        return "categorical_w_probabilities" if "probabilities" in leaf else "categorical"
    ints = all(isinstance(leaf.get(b), int) for b in ("min", "max"))
    return "int_uniform" if ints else "uniform"


@functools.cache
def _forms() -> list[dict[str, Any]]:
    """The JSON schema of each form a parameter may take in sweeps (``param_uniform``
    has three), each with the ``distribution`` names it accepts."""
    schema = import_sweeps().config.schema
    defs = schema.dereferenced_sweep_config_jsonschema["definitions"]
    return [
        form
        for name, d in defs.items()
        if name.startswith("param_") and name != "param_dict"
        for form in d.get("anyOf", [d])
    ]


def leaf_violations(where: str, leaf: dict[str, Any]) -> list[str]:
    """Why no distribution of sweeps' schema accepts the parameter ``leaf`` (sweeps
    itself says only "invalid hyperparameter configuration"): its errors against the
    schema of the distribution it names or implies, each starting with ``where``, e.g.
    ``x.q: 0 is less than or equal to the minimum of 0 (for q_uniform)``; [] when one
    accepts it, or when only min < max fails (the caller says so)."""
    sweeps = import_sweeps()
    dist = leaf.get("distribution", _implied(leaf))
    forms = _forms()
    fits = [f for f in forms if dist in f["properties"]["distribution"]["enum"]]
    if not fits:
        known = sorted({d for f in forms for d in f["properties"]["distribution"]["enum"]})
        return [f"{where}.distribution: must be one of {', '.join(known)}, but got {dist!r}"]
    validator = sweeps.config.cfg.validator
    per_form = [list(validator.evolve(schema=f).iter_errors(leaf)) for f in fits]
    try:  # one distribution's forms are quick to check; sweeps' own check tries them all
        if not all(per_form) or sweeps.config.schema.fill_parameter(where, leaf) is not None:
            return []
    except ValueError:  # min >= max, which the caller reports
        return []
    # the form with fewest errors, of those the fewest missing keys (uniform has three)
    errors = min(per_form, key=lambda es: (len(es), sum(e.validator == "required" for e in es)))
    typed = {tuple(e.path) for e in errors if e.validator == "type"}
    return [
        f"{where}{''.join(f'.{p}' for p in e.path)}: {e.message} (for {dist})"
        for e in errors
        if not (e.validator == "format" and tuple(e.path) in typed)  # the type error's twin
    ]


def _refused(e: Exception, spec: dict[str, Any]) -> EngineError:
    """sweeps' own exception as an ``EngineError`` that names the parameter and says
    what is wrong with it, without sweeps' internal names of nested parameters
    (``disc.wbnest[1a2b].lr`` is ``disc.lr``)."""
    message = str(getattr(e, "message", None) or e) or type(e).__name__  # jsonschema's, short
    path = ".".join(str(p) for p in getattr(e, "absolute_path", ()))
    message = re.sub(r"\.wbnest\[[0-9a-f]+\]", "", f"{path}: {message}" if path else message)
    bad = re.fullmatch(r"invalid hyperparameter configuration: (.+)", message)
    if bad:
        name = bad.group(1)
        message = "; ".join(_explain(f"parameters.{name}", _find(spec, name))) or message
    return EngineError(f"the search engine (sweeps) cannot use this spec: {message}")


def _find(spec: dict[str, Any], dotted: str) -> Any:
    """The parameter (or section) ``a.b`` of a spec (``{a: {parameters: {b: ...}}}``)."""
    node: Any = {"parameters": spec.get("parameters")}
    for part in dotted.split("."):
        params = node.get("parameters") if isinstance(node, dict) else None
        node = params.get(part) if isinstance(params, dict) else None
    return node


def _explain(where: str, node: Any) -> list[str]:
    """``leaf_violations`` of a parameter, or of every parameter in a section (sweeps
    names the section when one of its parameters is invalid)."""
    if isinstance(node, dict) and isinstance(node.get("parameters"), dict):
        return [m for k, v in node["parameters"].items() for m in _explain(f"{where}.{k}", v)]
    return leaf_violations(where, node) if isinstance(node, dict) else []


def to_stop(spec: dict[str, Any], runs: Sequence[EngineRun]) -> list[str]:
    """Ids of running runs that the spec's ``early_terminate`` rule stops now.

    Raises:
        EngineError: sweeps cannot apply the rule to this spec.
    """
    sweeps = import_sweeps()

    if "early_terminate" not in spec or "metric" not in spec:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stopped = sweeps.stop_runs(spec, _sweep_runs(runs, with_history=True), validate=False)
        except Exception as e:
            raise _refused(e, spec) from None
    return [str(r.name) for r in stopped]


def reached_target(spec: dict[str, Any], runs: Sequence[EngineRun]) -> tuple[str, float] | None:
    """The first finished run whose summary metric reaches the spec's ``metric.target``
    (at least it when maximising, at most when minimising, W&B's default), with its
    value; None when there is no target or no run reached it. W&B ends a sweep there."""
    metric = spec.get("metric") or {}
    target, name = metric.get("target"), metric.get("name")
    if target is None or not name:
        return None
    maximize = metric.get("goal", "minimize") == "maximize"
    for r in runs:
        value = r.summary.get(name) if r.state == "finished" else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            if (value >= target) if maximize else (value <= target):
                return r.id, float(value)
    return None
