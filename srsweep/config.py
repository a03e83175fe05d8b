"""Kernel configs: nested dataclasses with typed defaults, checked key by key.

A kernel declares its config as a ``@dataclass`` whose fields may themselves be
dataclasses (``disc.lr`` is field ``lr`` of the ``disc`` sub-config). Everything a
user supplies (sweep parameters, ``--set`` overrides, ``--config`` files) goes through
``check_value`` / ``build``, which reject unknown keys, wrong types and out-of-range
values with messages that name the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any
from typing import Literal
from typing import Union

from srsweep.errors import SpecError

__all__ = [
    "MAX_SEED",
    "param",
    "build",
    "check_value",
    "flat_fields",
    "flatten",
    "layered",
    "to_dict",
    "describe_type",
    "describe_range",
]


MAX_SEED = 2**32 - 1  # numpy's generators take seeds below 2**32


def param(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    help: str = "",
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with bounds (``ge``/``gt`` below, ``le`` above; every number
    in a list value is checked) and a one-line ``help``."""
    meta = {"ge": ge, "gt": gt, "le": le, "help": help}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    key: str
    type: Any
    default: Any
    meta: dict[str, Any]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flat_fields(cls: type, prefix: str = "") -> dict[str, FieldInfo]:
    """All leaf fields of a config class, by dotted key, in declaration order."""
    out: dict[str, FieldInfo] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out.update(flat_fields(tp, key + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out[key] = FieldInfo(key, tp, default, dict(f.metadata))
    return out


def _sections(cls: type, prefix: str = "") -> set[str]:
    out = set()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.add(prefix + f.name)
            out |= _sections(hints[f.name], prefix + f.name + ".")
    return out


@functools.cache
def _known(cls: type) -> tuple[dict[str, FieldInfo], set[str]]:
    """``flat_fields`` and the section keys of ``cls``, worked out once: a spec's every
    candidate value is checked against them (``get_type_hints`` costs a millisecond)."""
    return flat_fields(cls), _sections(cls)


def describe_type(tp: Any) -> str:
    """A short human name for a type annotation: ``float``, ``one of 'bce', 'wgan'``..."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe_type(args[0])}"
        return f"a list of {len(args)} ({', '.join(describe_type(a) for a in args)})"
    if origin is list:
        return f"a list of {describe_type(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(tp: Any, value: Any) -> Any:
    """Return ``value`` converted to ``tp`` (int -> float, list -> tuple) or raise."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_coerce(args[0], v) for v in value]
        else:
            if len(value) != len(args):
                raise _Mismatch
            items = [_coerce(a, v) for a, v in zip(args, value, strict=True)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise _Mismatch


def _numbers(value: Any) -> list[int | float]:
    """Every number in a value, as given: an int of 400 digits has no float."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return []


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def describe_range(key: str, meta: dict[str, Any]) -> str:
    """A field's bounds as ``1 <= epochs <= 10000000`` (``""`` when it has none)."""
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    low = f"{_num(ge)} <= " if ge is not None else f"{_num(gt)} < " if gt is not None else ""
    high = f" <= {_num(le)}" if le is not None else ""
    return f"{low}{key}{high}" if low or high else ""


def check_value(cls: type, key: str, value: Any) -> tuple[Any, str | None]:
    """Check one dotted ``key`` = ``value`` against ``cls``.

    Returns:
        ``(coerced_value, None)`` when acceptable, else ``(value, message)``.
    """
    fields, sections = _known(cls)
    if key not in fields:
        if key in sections:
            return value, f"{key}: is a section; give its keys ({key}.<name>), got {value!r}"
        near = difflib.get_close_matches(key, list(fields), n=2, cutoff=0.75)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        return value, f"{key}: unknown key{hint}; known keys: {', '.join(fields)}"
    info = fields[key]
    try:
        coerced = _coerce(info.type, value)
    except _Mismatch:
        return value, f"{key}: must be {describe_type(info.type)}, but got {value!r}"
    ge, gt, le = info.meta.get("ge"), info.meta.get("gt"), info.meta.get("le")
    # a field bounded on both sides names its whole range, whichever side is broken
    bounded = le is not None and (ge is not None or gt is not None)
    both = f" (allowed: {describe_range(key, info.meta)})" if bounded else ""
    for n in _numbers(coerced):
        if isinstance(n, float) and not math.isfinite(n):
            return value, f"{key}: must be finite, but got {value!r}{both}"
        if ge is not None and n < ge:
            return value, f"{key}: must be >= {_num(ge)}, but got {value!r}{both}"
        if gt is not None and n <= gt:
            return value, f"{key}: must be > {_num(gt)}, but got {value!r}{both}"
        if le is not None and n > le:
            return value, f"{key}: must be <= {_num(le)}, but got {value!r}{both}"
    return coerced, None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"disc": {"lr": 1}}`` -> ``{"disc.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def layered(*overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested or dotted overrides merged key by key, later ones winning, as dotted keys:
    ``{"disc": {"lr": 1}}`` then ``{"disc": {"gp": 0}}`` keeps both."""
    out: dict[str, Any] = {}
    for over in overrides:
        out.update(flatten(over))
    return out


def build(cls: type, overrides: dict[str, Any], source: str) -> Any:
    """Build a config from defaults plus nested or dotted ``overrides``.

    Raises:
        SpecError: listing every unknown key, wrong type, bad range and cross-field
            rule (the class's optional ``violations()`` method) at once.
    """
    errors: list[str] = []
    values: dict[str, Any] = {}
    for key, value in flatten(overrides).items():
        coerced, err = check_value(cls, key, value)
        if err:
            errors.append(err)
        else:
            values[key] = coerced
    if errors:
        raise SpecError(source, errors)
    cfg = _instantiate(cls, values, "")
    rule = getattr(cfg, "violations", None)
    if rule is not None:
        errors = list(rule())
        if errors:
            raise SpecError(source, errors)
    return cfg


def _instantiate(cls: type, values: dict[str, Any], prefix: str) -> Any:
    kwargs: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _instantiate(hints[f.name], values, key + ".")
        elif key in values:
            kwargs[f.name] = values[key]
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists) for JSON, wandb and joblib files."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return typing.cast(dict[str, Any], plain(dataclasses.asdict(cfg)))
