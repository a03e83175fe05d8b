"""The srsweep package's import graph, read from the source (nothing is imported):
no import cycle, no function-local import that only dodges one, dependencies that point
one way, and commands that never train (create, kernels, status) loading no torch.

Edges are the modules an import statement names (``from a.b import c`` names ``a.b.c``
when that is a module, else ``a.b``); the parent packages Python initialises on the way
are not edges. A cycle counts module-level imports only (class bodies included, ``if
TYPE_CHECKING:`` blocks not); the dependency rules count every import statement.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import srsweep
import srsweep.kernels

PACKAGE = Path(srsweep.__file__).parent
REPO = PACKAGE.parent


@dataclass(frozen=True)
class Import:
    module: str  # the importing srsweep module
    target: str  # a srsweep module, or a third-party top-level package
    line: int
    local: bool  # inside a function body: runs on call, not on import
    typing: bool  # under ``if TYPE_CHECKING:``: never runs


def _modules(path: Path = PACKAGE, prefix: str = "srsweep") -> dict[str, Path]:
    """Every module of the package by dotted name (``iter_modules`` level by level,
    as ``pkgutil.walk_packages`` does, but without importing the packages)."""
    out = {prefix: path / "__init__.py"}
    for info in pkgutil.iter_modules([str(path)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            out.update(_modules(path / info.name, name))
        else:
            out[name] = path / f"{info.name}.py"
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            # ``import a.b.c`` names the deepest of its prefixes that is a module
            yield next(
                (
                    ".".join(parts[:n])
                    for n in range(len(parts), 0, -1)
                    if ".".join(parts[:n]) in MODULES
                ),
                parts[0],
            )
        return
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*up, base] if base else up)
    if base not in MODULES and not base.startswith("srsweep"):
        yield base.split(".")[0]
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in MODULES else base


def _imports(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: list[Import] = []

    def visit(node: ast.AST, local: bool, typing: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(module, node):
                found.append(Import(module, target, node.lineno, local, typing))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, local, True)
            for child in node.orelse:
                visit(child, local, typing)
            return
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for sub in ast.iter_child_nodes(node):
            visit(sub, inner, typing)

    visit(tree, False, False)
    return found


IMPORTS = [i for m in sorted(MODULES) for i in _imports(m)]


def _graph() -> dict[str, set[str]]:
    """srsweep module -> the srsweep modules it imports at module level."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if i.target in MODULES and i.target != i.module and not (i.local or i.typing):
            graph[i.module].add(i.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle, each from its smallest module (a DFS per start module
    over the larger ones: the graph is small)."""
    out: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                out.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return out


def _path(graph: dict[str, set[str]], src: str, dst: str) -> list[str] | None:
    """A shortest module-level import chain from ``src`` to ``dst``, if any."""
    seen, frontier = {src: [src]}, [src]
    while frontier:
        nxt_frontier = []
        for m in frontier:
            for n in sorted(graph[m]):
                if n not in seen:
                    seen[n] = [*seen[m], n]
                    nxt_frontier.append(n)
        frontier = nxt_frontier
    return seen.get(dst)


# --- (a) no cycles ------------------------------------------------------------------------


def test_cycles_are_found_and_named_once() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"b", "d"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "a"], ["b", "c", "b"]]
    assert _path(graph, "a", "d") == ["a", "b", "c", "d"] and _path(graph, "d", "a") is None


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    listing = "\n".join("  " + " -> ".join(c) for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) among srsweep modules:\n{listing}"


# --- (b) no function-local import that dodges a cycle -------------------------------------


def test_no_local_import_dodges_a_cycle() -> None:
    graph = _graph()
    dodges: dict[tuple[str, str], list[int]] = {}
    for i in IMPORTS:
        if i.local and not i.typing and i.target in MODULES and i.target != i.module:
            if _path(graph, i.target, i.module) is not None:
                dodges.setdefault((i.module, i.target), []).append(i.line)
    listing = "\n".join(
        f"  {module} -> {' -> '.join(_path(graph, target, module) or [])}: {module} imports "
        f"{target} in functions (lines {', '.join(map(str, lines))})"
        for (module, target), lines in sorted(dodges.items())
    )
    assert not dodges, f"{len(dodges)} import cycle(s) dodged by function-local imports:\n{listing}"


# --- (c) dependencies point one way -------------------------------------------------------

# third-party package -> the srsweep modules that may import it (fnmatch patterns)
ALLOWED = {
    "click": ["srsweep.cli"],
    "wandb": ["srsweep.tracking", "srsweep.backends.wandb*"],
    "pandas": ["srsweep.reports", "srsweep.reports.*"],
    "matplotlib": ["srsweep.reports", "srsweep.reports.*"],
    "plotly": ["srsweep.reports", "srsweep.reports.*"],
    "sklearn": ["srsweep.reports", "srsweep.reports.*"],
    "scipy": ["srsweep.reports", "srsweep.reports.*"],
    "torch": ["srsweep.kernels", "srsweep.kernels.*", "srsweep.analysis", "srsweep.analysis.*"],
    "submitit": ["srsweep.launch.slurm"],
}
# ... and those that may name it in annotations only (under TYPE_CHECKING)
TYPING_ONLY = {"pandas": ["srsweep.api"]}  # the Python API returns the report's frames


@pytest.mark.parametrize("package", sorted(ALLOWED), ids=sorted(ALLOWED))
def test_third_party_package_only_where_allowed(package: str) -> None:
    where = ALLOWED[package]
    wrong = [
        f"  {i.module}:{i.line}"
        for i in IMPORTS
        if i.target == package
        and not any(fnmatch.fnmatch(i.module, p) for p in where)
        and not (i.typing and i.module in TYPING_ONLY.get(package, []))
    ]
    assert not wrong, f"{package} is imported outside {', '.join(where)}:\n" + "\n".join(wrong)


def _kernel_part_report_may_import(target: str) -> bool:
    """The registry, the contracts, a kernel's record (its package ``__init__``) and
    its ``config``: nothing that trains."""
    if target in ("srsweep.kernels", "srsweep.kernels._base"):
        return True
    parts = target.split(".")
    record = len(parts) == 3 and MODULES[target].name == "__init__.py"
    return record or (len(parts) == 4 and parts[3] == "config")


def test_report_imports_no_training_code() -> None:
    wrong = [
        f"  {i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if fnmatch.fnmatch(i.module, "srsweep.reports*")
        and (
            fnmatch.fnmatch(i.target, "srsweep.analysis*")
            or (
                fnmatch.fnmatch(i.target, "srsweep.kernels.*")
                and not _kernel_part_report_may_import(i.target)
            )
        )
    ]
    assert not wrong, "srsweep.reports imports training code:\n" + "\n".join(wrong)


# --- (d) create, kernels and status load no torch -----------------------------------------


def _loads(module: str, graph: dict[str, set[str]]) -> list[str]:
    """The srsweep modules importing ``module`` runs at import time: its module-level
    imports, transitively, and the packages Python initialises on the way."""
    seen, todo = [module], [module]
    while todo:
        m = todo.pop()
        parents = [".".join(m.split(".")[:n]) for n in range(1, m.count(".") + 1)]
        for n in [*parents, *sorted(graph[m])]:
            if n not in seen:
                seen.append(n)
                todo.append(n)
    return seen


@pytest.mark.parametrize(
    "name", sorted(srsweep.kernels.MODULES), ids=sorted(srsweep.kernels.MODULES)
)
def test_kernel_record_and_config_import_no_torch(name: str) -> None:
    """What ``create``, ``kernels`` and ``status`` read of a kernel: its record and
    its config, and everything they import."""
    graph = _graph()
    record = srsweep.kernels.MODULES[name]
    roots = [m for m in (record, f"{record}.config") if m in MODULES]
    torchy = {
        i.module: i.line for i in IMPORTS if i.target == "torch" and not (i.local or i.typing)
    }
    wrong = [
        f"  {root} loads {m}, which imports torch (line {torchy[m]})"
        for root in roots
        for m in _loads(root, graph)
        if m in torchy
    ]
    assert not wrong, f"kernel {name!r}: its record or config imports torch:\n" + "\n".join(wrong)


_CHECK = """
import sys
from srsweep.cli import main
main({args!r}, standalone_mode=False)
print("torch loaded:", "torch" in sys.modules)
"""


def _cli(*args: str) -> tuple[bool, str]:
    """Run ``srsweep ARGS`` in a fresh interpreter: whether it loaded torch, and stdout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK.format(args=list(args))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"srsweep {' '.join(args)} failed:\n{proc.stderr}"
    *out, last = proc.stdout.strip().splitlines()
    assert last.startswith("torch loaded: "), proc.stdout
    return last == "torch loaded: True", "\n".join(out)


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> tuple[bool, Path, str]:
    """``srsweep create sweeps/sd_study.yaml`` in a fresh results folder: whether it
    loaded torch, the folder, the sweep id."""
    results = tmp_path_factory.mktemp("results")
    torch_loaded, out = _cli("--results", str(results), "create", "sweeps/sd_study.yaml")
    return torch_loaded, results, out.splitlines()[-1]


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--dry-run", "sweeps/sd_study.yaml"],
        ["kernels"],
        *[["kernels", name] for name in sorted(srsweep.kernels.MODULES)],
    ],
    ids=lambda args: " ".join(args),
)
def test_command_loads_no_torch(args: list[str], tmp_path: Path) -> None:
    torch_loaded, _ = _cli("--results", str(tmp_path / "results"), *args)
    assert not torch_loaded, f"srsweep {' '.join(args)} imports torch"


def test_create_loads_no_torch(created: tuple[bool, Path, str]) -> None:
    assert not created[0], "srsweep create sweeps/sd_study.yaml imports torch"


def test_status_loads_no_torch(created: tuple[bool, Path, str]) -> None:
    _, results, sweep_id = created
    torch_loaded, out = _cli("--results", str(results), "status", sweep_id)
    assert sweep_id in out
    assert not torch_loaded, f"srsweep status {sweep_id} (an sd sweep) imports torch"
