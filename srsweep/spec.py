"""Load and validate sweep specs (W&B sweep format) before anything is registered.

Validation collects every violation and raises once: the W&B JSON schema (from the
``sweeps`` package, so a spec accepted here is accepted by a W&B server), the shape of
each parameter, and every candidate value against the kernel's declared config.

A ``program`` that is not a kernel is a script (or any executable) that agents run as
W&B's own agent would: it must be a file beside the spec or an executable on PATH, and
its parameters are not checked against any config.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from srsweep import config as _config
from srsweep import kernels
from srsweep import limits
from srsweep.errors import EngineError
from srsweep.errors import NotFoundError
from srsweep.errors import SpecError
from srsweep.kernels import Lookup

__all__ = [
    "SCRIPT",
    "Spec",
    "load_spec",
    "load_yaml",
    "load_json_object",
    "validate",
    "parse_sets",
    "leaf_params",
    "swept_keys",
    "objective",
]


class _Loader(limits.BoundedComposer, yaml.SafeLoader):  # type: ignore[misc]
    """``safe_load`` plus YAML 1.2 floats (PyYAML reads ``1e-5`` as a *string*), and
    the nesting, value-count and alias limits (``limits.BoundedComposer``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

# the ledger's ``kernel`` of a sweep whose program is a script, not a kernel
SCRIPT = "script"

_LEAF_KEYS = {
    "value",
    "values",
    "probabilities",
    "distribution",
    "min",
    "max",
    "mu",
    "sigma",
    "q",
    "a",
    "b",
}
# distributions whose bounds are the values themselves, on a log scale
_LOG_VALUE_DISTS = {"log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"}


def load_yaml(path: str | Path, text: str | None = None) -> Any:
    """Parse YAML safely within ``limits`` (size, nesting, aliases); every error names
    the file, and the line and column or the key.

    Raises:
        NotFoundError: no such file.
        SpecError: unreadable, over a limit, or not YAML.
    """
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise NotFoundError(f"{path}: no such file")
        try:
            with path.open("rb") as f:
                data = f.read(limits.MAX_BYTES + 1)  # a file can grow while it is read
            text = data.decode("utf-8") if len(data) <= limits.MAX_BYTES else None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(str(path), [f"cannot read: {e}"]) from None
    if text is None or len(text.encode("utf-8")) > limits.MAX_BYTES:
        raise SpecError(str(path), [f"the file is over {limits.MAX_BYTES} bytes (the limit)"])
    try:
        return _parse(text)
    except limits.LimitExceeded as e:
        raise SpecError(str(path), [str(e)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(str(path), [f"{where}YAML syntax error: {problem}"]) from None


def _parse(text: str) -> Any:
    """YAML text -> value; an integer of over 4300 digits (Python refuses to convert it)
    is a YAML error like any other unusable scalar."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except ValueError as e:
        raise yaml.YAMLError(str(e)) from None


def load_json_object(text: str, source: str) -> dict[str, Any]:
    """A JSON object of config values (W&B's ``${args_json}``), within ``limits``.

    Raises:
        SpecError: not JSON, not an object, or over a limit; named by ``source``.
    """
    if len(text.encode("utf-8")) > limits.MAX_BYTES:
        raise SpecError(source, [f"over {limits.MAX_BYTES} bytes (the limit)"])
    try:
        value = json.loads(text)
    except RecursionError:
        raise SpecError(source, [limits.TOO_DEEP]) from None
    except ValueError as e:  # JSONDecodeError, or an integer of too many digits
        raise SpecError(source, [f"not valid JSON ({e})"]) from None
    if not isinstance(value, dict):
        raise SpecError(source, ["must be a JSON object of config values"])
    problems = limits.tree_violations(value)
    if problems:
        raise SpecError(source, problems)
    return value


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec: the raw W&B dict plus what srsweep resolved from it."""

    source: str
    raw: dict[str, Any]
    kernel: kernels.Kernel | None  # None: the program is a script
    metric: str  # "" when a script's spec names no metric
    goal: str
    script: str | None = None  # the program when it is not a kernel, as the spec gives it
    warnings: tuple[str, ...] = ()  # accepted, as W&B accepts them, but worth saying

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or Path(self.source).stem)

    @property
    def method(self) -> str:
        return str(self.raw["method"])

    def swept_keys(self) -> list[str]:
        return swept_keys(self.raw)


def objective(raw: dict[str, Any], kernel: kernels.Kernel | None) -> tuple[str, str]:
    """The metric a sweep is judged by and its goal: the spec's ``metric``, else the
    kernel's default; a script's sweep has no default metric ("") and W&B's default
    goal, ``minimize``. Every caller (agent, status, report) asks here."""
    metric = raw.get("metric") or {}
    if kernel is None:
        return str(metric.get("name", "")), str(metric.get("goal", "minimize"))
    return str(metric.get("name", kernel.metric)), str(metric.get("goal", kernel.goal))


def swept_keys(raw: dict[str, Any]) -> list[str]:
    """Dotted keys of a spec's parameters that are searched (not fixed by ``value``)."""
    return [
        k
        for k, leaf in leaf_params(raw.get("parameters", {})).items()
        if isinstance(leaf, dict) and "value" not in leaf
    ]


def load_spec(path: str | Path, lookup: Lookup | None = None) -> Spec:
    """Read ``path`` and validate it (see ``validate``)."""
    raw = load_yaml(path)
    return validate(raw, str(path), lookup=lookup)


def leaf_params(params: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """W&B nested ``parameters`` -> ``{"disc.lr": {"values": [...]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        if isinstance(p, dict) and isinstance(p.get("parameters"), dict):
            out.update(leaf_params(p["parameters"], f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = p
    return out


def _schema_violations(raw: dict[str, Any]) -> list[str]:
    from srsweep.engine import import_sweeps

    sweeps = import_sweeps()
    messages = sweeps.schema_violations_from_proposed_config(raw)
    located: dict[str, str] = {}  # where each message's error is (validated again: rare)
    for err in sweeps.config.cfg.validator.iter_errors(raw) if messages else ():
        path = ".".join(str(p) for p in err.absolute_path)
        located.setdefault(err.message, path)
    out = []
    for msg in messages:
        path = located.get(msg, "")
        if path.startswith("parameters") and "valid under any" in msg:
            continue  # the parameter checks below say precisely what is wrong
        if msg.startswith("invalid hyperparameter configuration"):
            continue
        out.append(f"{path}: {msg}" if path else msg)
    return out


def _param_violations(kernel: kernels.Kernel | None, params: Any) -> list[str]:
    from srsweep import engine  # numpy and sweeps: only once a spec is checked

    if not isinstance(params, dict) or not params:
        return ["parameters: must be a mapping with at least one parameter"]
    out: list[str] = []
    for key, leaf in leaf_params(params).items():
        where = f"parameters.{key}"
        if not isinstance(leaf, dict):
            out.append(f"{where}: must be a mapping (value, values, or min/max), got {leaf!r}")
            continue
        unknown = sorted(set(leaf) - _LEAF_KEYS - {"parameters"})
        if unknown:
            out.append(
                f"{where}: unknown field {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(_LEAF_KEYS))}"
            )
            continue
        if "values" in leaf and (not isinstance(leaf["values"], list) or not leaf["values"]):
            out.append(f"{where}.values: must be a non-empty list, got {leaf['values']!r}")
            continue
        if not ({"value", "values", "min", "max", "distribution"} & set(leaf)):
            out.append(f"{where}: give value, values, or min/max (optionally a distribution)")
            continue
        lo, hi = leaf.get("min"), leaf.get("max")
        bounds = []
        if (
            leaf.get("distribution") in _LOG_VALUE_DISTS
            and isinstance(lo, (int, float))
            and lo <= 0
        ):
            bounds.append(f"{where}.min: must be > 0 for {leaf['distribution']}, but got {lo!r}")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and not lo < hi:
            bounds.append(f"{where}: min < max must hold, but got (min={lo}, max={hi})")
        out += bounds or engine.leaf_violations(where, leaf)
        if kernel is None:  # a script's parameters are its own business
            continue
        candidates = [("value", leaf["value"])] if "value" in leaf else []
        candidates += [(f"values[{i}]", v) for i, v in enumerate(leaf.get("values") or [])]
        if leaf.get("distribution", "uniform") not in {
            "normal",
            "q_normal",
            "log_normal",
            "q_log_normal",
            "beta",
            "q_beta",
        }:
            candidates += [(b, leaf[b]) for b in ("min", "max") if b in leaf]
        for label, value in candidates:
            for k, v in _expand(key, value, kernel):
                _, err = _config.check_value(kernel.config, k, v)
                if err:
                    out.append(f"{where}.{label}: {err}")
    return out


def _expand(key: str, value: Any, kernel: kernels.Kernel) -> list[tuple[str, Any]]:
    """A whole sub-dict given for a section (``disc: {value: {lr: ...}}``) -> its keys."""
    if isinstance(value, dict) and key not in _config.flat_fields(kernel.config):
        return [(f"{key}.{k}", v) for k, v in _config.flatten(value).items()]
    return [(key, value)]


_PROBE_TRIALS = 16  # trials drawn at create time to check whole configs


def _engine_violations(
    raw: dict[str, Any], kernel: kernels.Kernel | None, lookup: Lookup | None
) -> list[str]:
    """The engine can search the spec, and (for a kernel) the first trials it would hand
    out build valid configs: cross-field rules and references to other runs (srnet's
    ``disc.from_run``) fail here, at create time, not in every trial."""
    from srsweep import engine

    try:
        trials = engine.suggest(raw, [], 1 if kernel is None else _PROBE_TRIALS, seed=0)
    except EngineError as e:
        return [str(e)]
    out: list[str] = []
    if kernel is None:
        return out
    for params in trials:
        try:
            cfg = _config.build(kernel.config, params, "trial")
            if kernel.resolve is not None:
                kernel.resolve(cfg, lookup)
        except SpecError as e:
            out += [f"a trial of this sweep would be refused: {v}" for v in e.violations]
    return list(dict.fromkeys(out))  # each message once, in order


def validate(raw: Any, source: str, lookup: Lookup | None = None) -> Spec:
    """Check a loaded spec completely.

    Args:
        raw: the loaded spec, or one given as a dict (its tuples are read as lists, as
            W&B reads a spec: JSON).
        source: where it came from, for messages.
        lookup: finds runs that a config names (srnet's ``disc.from_run``) in the
            ledger the sweep is registered in; None accepts only model file paths.

    Raises:
        SpecError: every violation found, each naming its key and what is allowed.
    """
    if not isinstance(raw, dict):
        raise SpecError(source, [f"the spec must be a mapping of keys, got {type(raw).__name__}"])
    too_big = limits.tree_violations(raw)  # before any walk that could expand or recurse
    if too_big:
        raise SpecError(source, too_big)
    raw = _json_like(raw)
    errors: list[str] = []
    notes: list[str] = []  # what W&B registers with a warning: so does srsweep
    program = raw.get("program")
    kernel, script = None, None
    if program is None:
        pass  # W&B needs none: a command of its own, or trials run as a Python function
    elif not isinstance(program, str) or not program:
        errors.append(
            f"program: must be a kernel ({', '.join(kernels.names())}) or a "
            f"script's path, got {program!r}"
        )
    elif program in kernels.names():
        kernel = kernels.get(program)
    else:
        script = program
        if not _is_script(program, source):
            where = Path(source).resolve().parent / program
            close = difflib.get_close_matches(program, kernels.names(), n=1)
            notes.append(
                f"program: {program!r} is not a kernel ({', '.join(kernels.names())}) nor, "
                f"yet, a file {where} or a command on PATH: its trials will fail unless it "
                "is there when they run" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        errors.append(f"parameters: must be a mapping with at least one parameter, got {params!r}")
        raise SpecError(source, errors)
    schema_notes: list[str] = []
    try:
        for message in _schema_violations(raw):
            (schema_notes if _only_a_warning(message) else errors).append(message)
    except Exception as e:  # sweeps' extra checks assume a schema-shaped dict
        errors.append(f"does not fit the W&B sweep schema ({type(e).__name__}: {e})")
    errors += _param_violations(kernel, params)
    errors += _metric_violations(raw, kernel)
    huge_grid = limits.grid_violation(raw)
    if huge_grid:
        errors.append(f"{huge_grid}; sweep fewer values, or use method: random with a run_cap")
    if not errors:
        errors += _engine_violations(raw, kernel, lookup)
    if errors:
        raise SpecError(source, errors)
    name, goal = objective(raw, kernel)
    return Spec(source, raw, kernel, name, goal, script, tuple(notes + schema_notes))


def _metric_violations(raw: dict[str, Any], kernel: kernels.Kernel | None) -> list[str]:
    """A kernel sweep's ``metric.name`` must be something the kernel logs: otherwise
    every trial would run and the sweep could never be judged."""
    metric = raw.get("metric")
    name = metric.get("name") if isinstance(metric, dict) else None
    if kernel is None or not kernel.logs or not isinstance(name, str):
        return []
    known = [*kernel.logs, "runtime"]
    if name in known:
        return []
    close = difflib.get_close_matches(name, known, n=1)
    return [
        f"metric.name: {name!r} is not logged by kernel {kernel.name}; it logs "
        f"{', '.join(known)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    ]


def command_text(raw: dict[str, Any]) -> str:
    """The spec's command as one string (W&B's default when it has none)."""
    command = raw.get("command")
    if not isinstance(command, list) or not command:
        return "${env} ${interpreter} ${program} ${args}"
    return " ".join(str(c) for c in command)


# what W&B's server registers after printing a warning (its sweeps engine samples these)
_WARNINGS = (
    re.compile(r"uses (q_|inv_)?log_uniform, where min/max specify base-e exponents"),
    re.compile(r"^parameters: '[^']*' does not match "),  # names such as model/lr
)


def _only_a_warning(message: str) -> bool:
    return any(w.search(message) for w in _WARNINGS)


def _json_like(value: Any) -> Any:
    """A copy of a spec's mappings and lists, tuples turned into lists."""
    if isinstance(value, dict):
        return {k: _json_like(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_like(v) for v in value]
    return value


def _is_script(program: str, source: str) -> bool:
    """W&B agents run ``program`` from the spec's folder: a file there, or a command."""
    return (Path(source).parent / program).is_file() or shutil.which(program) is not None


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["disc.lr=1e-3", "ext=[grad]"]`` -> ``{"disc.lr": 0.001, "ext": ["grad"]}``.

    Values are parsed as YAML (numbers, booleans, lists, null) within ``limits``;
    anything else is a string.

    Raises:
        SpecError: an item is not KEY=VALUE, or its value is over a limit.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError("--set", [f"{item!r}: expected KEY=VALUE, e.g. disc.lr=1e-3"])
        if len(text.encode("utf-8")) > limits.MAX_BYTES:
            raise SpecError("--set", [f"{key}: over {limits.MAX_BYTES} bytes (the limit)"])
        try:
            value = _parse(text)
        except limits.LimitExceeded as e:
            where = f"{key}{e.key if e.key.startswith('[') else '.' + e.key}" if e.key else key
            raise SpecError("--set", [f"{where}: {e.rule}"]) from None
        except yaml.YAMLError:
            value = text
        out[key] = value
    return out
