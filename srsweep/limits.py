"""Size limits on what users hand in (spec files, dict specs, ``--config``, ``--set``,
``ARGS_JSON``), checked while reading, before anything big is built.

A 1 KB YAML file whose aliases refer to aliases expands to billions of nodes; a deeply
nested one overflows Python's stack in every recursive walk after it; a grid of 10^12
points is a list sweeps tries to build. Each is refused here with the key where it
happens and the limit, so no later step (schema check, deepcopy, engine) ever sees it.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = [
    "MAX_ALIASED",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_GRID",
    "MAX_NODES",
    "TOO_DEEP",
    "BoundedComposer",
    "LimitExceeded",
    "grid_points",
    "grid_violation",
    "tree_violations",
]

MAX_BYTES = 1_000_000  # a spec file or override text; the seed studies' are about 1 KB
MAX_DEPTH = 32  # nested mappings and lists; a spec with sections needs about 8
MAX_ALIASED = 10_000  # nodes YAML aliases may add (each alias adds its anchor's subtree)
MAX_NODES = 20_000  # values in one spec or override, counted as if written out; PyYAML
# composes about 20k values a second, so even a refusal at this limit takes about one
MAX_GRID = 1_000_000  # points of a grid search, the product of each parameter's count

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels (the limit)"


class LimitExceeded(Exception):
    """A size limit was hit while reading: ``key`` is where, ``rule`` what was exceeded."""

    def __init__(self, key: str, rule: str) -> None:
        self.key, self.rule = key, rule
        super().__init__(f"{key}: {rule}" if key else rule)


def _label(parent: Any, index: Any) -> str | None:
    """The path component of a node composed as ``parent``'s item ``index``."""
    if isinstance(index, int):
        return f"[{index}]"
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    if index is None and isinstance(parent, yaml.MappingNode):
        return None  # a mapping key: its own path is the mapping's
    return "<key>" if index is not None else None


class BoundedComposer:
    """Mix into a PyYAML loader (before it) to refuse, while composing, a document
    nested deeper than ``MAX_DEPTH``, of more than ``MAX_NODES`` values, with an alias
    to a node that contains it, or with aliases that add more than ``MAX_ALIASED``
    values. Nothing is constructed before that."""

    def compose_document(self) -> Any:
        self._path: list[str] = []  # keys and [indices] down to the node being composed
        self._depth = 0  # collections open around it
        self._open: set[str] = set()  # anchors of collections still being composed
        self._size: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height)
        self._aliased = 0
        self._count = 0  # nodes composed, aliases not counted
        return super().compose_document()  # type: ignore[misc]

    def _refuse(self, rule: str) -> LimitExceeded:
        return LimitExceeded(".".join(self._path).replace(".[", "["), rule)

    def compose_node(self, parent: Any, index: Any) -> Any:
        label = _label(parent, index)
        if label is not None:
            self._path.append(label)
        try:
            return self._compose(parent, index)
        finally:
            if label is not None:
                self._path.pop()

    def _check_count(self) -> None:
        if self._count + self._aliased > MAX_NODES:
            raise self._refuse(f"over {MAX_NODES} values (the limit)")

    def _compose(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise self._refuse(f"alias *{event.anchor} refers to a node that contains it")
            node = super().compose_node(parent, index)  # type: ignore[misc]
            nodes, height = self._size[id(node)]
            self._aliased += nodes
            if self._aliased > MAX_ALIASED:
                raise self._refuse(
                    f"YAML aliases expand to over {MAX_ALIASED} values (the limit); "
                    "write the values out"
                )
            if self._depth + height > MAX_DEPTH:
                raise self._refuse(TOO_DEEP)
            self._check_count()
            return node
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        self._count += 1
        self._check_count()
        if not collection:
            node = super().compose_node(parent, index)  # type: ignore[misc]
            self._size[id(node)] = (1, 0)
            return node
        if self._depth + 1 > MAX_DEPTH:
            raise self._refuse(TOO_DEEP)
        if event.anchor is not None:
            self._open.add(event.anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)
        self._size[id(node)] = _measure(node, self._size)
        return node


def _measure(node: Any, known: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(nodes written out, nesting height) of a composed collection; its children are
    measured already."""
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = [c for pair in node.value for c in pair]
    sizes = [known[id(c)] for c in children]
    return 1 + sum(n for n, _ in sizes), 1 + max((h for _, h in sizes), default=0)


def tree_violations(value: Any) -> list[str]:
    """Where a loaded value (a spec given as a dict, a parsed override) breaks
    ``MAX_DEPTH`` or ``MAX_NODES``; shared and self-containing parts count as written
    out, and the walk stops at the first limit, so it never loops or expands."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return [f"{where or 'the spec'}: over {MAX_NODES} values (the limit)"]
        if isinstance(item, Mapping):
            children = [(v, f"{where}.{k}" if where else str(k)) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(v, f"{where}[{i}]") for i, v in enumerate(item)]
        else:
            continue
        if depth + 1 > MAX_DEPTH:
            return [f"{where or 'the spec'}: {TOO_DEEP}"]
        stack.extend((v, w, depth + 1) for v, w in reversed(children))
    return []


def _count(leaf: Any) -> float:
    """Grid points one parameter contributes, the way sweeps' grid search makes them."""
    if not isinstance(leaf, dict):
        return 1
    if isinstance(leaf.get("values"), list):
        return max(1, len(leaf["values"]))
    given = (leaf.get("min"), leaf.get("max"), leaf.get("q", 1.0))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return 1  # not a range: the schema checks say what is wrong
    lo, hi, q = (typing.cast(float, v) for v in given)
    if any(isinstance(v, float) and not math.isfinite(v) for v in (lo, hi, q)):
        return math.inf
    dist = leaf.get("distribution")
    if dist == "int_uniform" or (dist is None and isinstance(lo, int) and isinstance(hi, int)):
        return max(1, int(hi) - int(lo) + 1)  # range(min, max + 1)
    if dist == "q_uniform" and q > 0:
        try:
            return max(1, math.ceil((hi - lo) / q))  # np.arange(min, max, q)
        except OverflowError:  # the quotient is beyond any float
            return math.inf
    return 1


def grid_points(spec: dict[str, Any]) -> float | None:
    """The number of points of a grid spec (counted, never expanded); None for a spec
    of another method."""
    params = spec.get("parameters")
    if spec.get("method") != "grid" or not isinstance(params, dict):
        return None
    return _grid_points(params)[0]


def grid_violation(spec: dict[str, Any]) -> str | None:
    """What is wrong with a grid spec of over ``MAX_GRID`` points (counted, never
    expanded), or None."""
    params = spec.get("parameters")
    if spec.get("method") != "grid" or not isinstance(params, dict):
        return None
    points, counts = _grid_points(params)
    if points <= MAX_GRID:
        return None
    return (
        f"parameters: a grid of {_g(points)} points ({' x '.join(counts)}) is over the "
        f"limit of {MAX_GRID}"
    )


def _g(n: float) -> str:
    return f"{n:g}" if n < 1e300 else "over 1e300"  # a 400-digit int has no float


def _grid_points(params: dict[str, Any], prefix: str = "") -> tuple[float, list[str]]:
    """The number of points of a grid over W&B ``parameters`` (nested sections
    included) and the counts that make it (``["a: 3", "b.c: 10"]``)."""
    total: float = 1
    parts: list[str] = []
    for name, leaf in params.items():
        key = f"{prefix}{name}"
        if isinstance(leaf, dict) and isinstance(leaf.get("parameters"), dict):
            n, more = _grid_points(leaf["parameters"], f"{key}.")
            parts += more
        else:
            n = _count(leaf)
            if n != 1:
                parts.append(f"{key}: {_g(n)}")
        total *= n
    return total, parts
