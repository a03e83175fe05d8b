"""Function libraries: the "real" samples a symbolic discriminator learns to recognise.

A library file (``libs/<name>.lib``) holds one function per line as ``;``-separated
fields: the value expression, then one derivative field per input column. Inputs are
written as ``<VAR>[:,<col>]``; ``N<k>`` ~ N(0,1) and ``U<k>`` ~ U[0,1) are coefficients
drawn afresh for every sample. Fields are parsed with ``ast`` and compiled to tensor
operations from a short allow-list, never ``eval``-ed. Format and sampling rules:
``../shared/reference/symrep.md`` section 1, tables in ``functions.md``.

Loading a library imports no torch: config checks (``sd``'s and ``srnet``'s
``violations()``, run by ``srsweep create``) read its metadata (``len``, ``in_var``,
``n_columns``, ``n_derivs``) and must stay torch-free. torch is imported when a library
is first evaluated or sampled.
"""

from __future__ import annotations

import ast
import importlib.resources
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep.errors import NotFoundError
from srsweep.errors import SpecError

if TYPE_CHECKING:
    import torch

__all__ = ["FunctionLibrary", "available"]

Env = dict[str, Any]  # "x": inputs [N, d]; "N0", "U0", ...: coefficients [S, 1]
Compiled = Callable[[Env], Any] | float  # a float is a folded constant

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# on folded constants; on tensors the same-named method runs (``t.sin()`` is ``torch.sin(t)``)
_FUNS: dict[str, Callable[[float], float]] = {"sin": math.sin, "cos": math.cos, "exp": math.exp}
_COEF = re.compile(r"[NU](\d+)")


def available() -> list[str]:
    """Names of the libraries shipped in ``srsweep/kernels/common/libs``."""
    root = importlib.resources.files("srsweep.kernels.common") / "libs"
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".lib"))


class _Compiler:
    """Turns one field's AST into a closure over ``Env``; records what the field uses."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.var: str | None = None  # the input variable name the subscripts use
        self.columns: set[int] = set()
        self.coefs: set[int] = set()

    def fail(self, why: str) -> SpecError:
        return SpecError(self.where, [why])

    def compile(self, node: ast.AST) -> Compiled:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"only numbers are allowed as constants, got {value!r}")
            return float(value)
        if isinstance(node, ast.Name) and _COEF.fullmatch(node.id):
            self.coefs.add(int(node.id[1:]))
            name = node.id
            return lambda env: env[name]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.compile(node.operand)
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            if isinstance(inner, float):
                return sign * inner
            return lambda env: sign * inner(env)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._binop(_BINOPS[type(node.op)], node)
        if isinstance(node, ast.Subscript):
            return self._column(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(
            f"{ast.unparse(node)!r} is not allowed (numbers, + - * / **, N<k>, "
            "U<k>, <VAR>[:,<col>] and sin/cos/exp only)"
        )

    def _binop(self, op: Callable[[Any, Any], Any], node: ast.BinOp) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if isinstance(left, float) and isinstance(right, float):
            try:  # fold now, so that 1/0 fails at load time with a location
                return float(op(left, right))
            except (ArithmeticError, TypeError) as e:
                raise self.fail(f"cannot evaluate {ast.unparse(node)!r}: {e}") from None
        lf = left if callable(left) else (lambda env, v=left: v)
        rf = right if callable(right) else (lambda env, v=right: v)
        return lambda env: op(lf(env), rf(env))

    def _column(self, node: ast.Subscript) -> Compiled:
        idx = node.slice
        ok = (
            isinstance(node.value, ast.Name)
            and isinstance(idx, ast.Tuple)
            and len(idx.elts) == 2
            and isinstance(idx.elts[0], ast.Slice)
            and idx.elts[0].lower is idx.elts[0].upper is idx.elts[0].step is None
            and isinstance(idx.elts[1], ast.Constant)
            and type(idx.elts[1].value) is int
        )
        if not ok:
            raise self.fail(f"inputs must be written <VAR>[:,<col>], got {ast.unparse(node)!r}")
        assert isinstance(node.value, ast.Name) and isinstance(idx, ast.Tuple)
        col = idx.elts[1].value  # type: ignore[attr-defined]
        if self.var not in (None, node.value.id):
            raise self.fail(f"one input variable per library, got {self.var} and {node.value.id}")
        self.var = node.value.id
        self.columns.add(col)
        return lambda env: env["x"][:, col]

    def _call(self, node: ast.Call) -> Compiled:
        f = node.func
        name = f.id if isinstance(f, ast.Name) else None
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "np":
            name = f.attr
        if name not in _FUNS or len(node.args) != 1 or node.keywords:
            raise self.fail(
                f"only one-argument sin/cos/exp calls are allowed, got {ast.unparse(node)!r}"
            )
        assert name is not None
        arg = self.compile(node.args[0])
        if isinstance(arg, float):
            try:
                return _FUNS[name](arg)
            except ArithmeticError as e:
                raise self.fail(f"cannot evaluate {ast.unparse(node)!r}: {e}") from None
        # a non-constant field always evaluates to a tensor (x or a coefficient is in it)
        return lambda env: getattr(arg(env), name)()


class _Line:
    """One library function: compiled fields and how many coefficient pairs it draws."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        comp = _Compiler(where)
        self.fields: list[Compiled] = []
        for field in text.split(";"):
            try:
                tree = ast.parse(field.strip(), mode="eval")
            except SyntaxError as e:
                raise comp.fail(f"cannot parse {field.strip()!r}: {e.msg}") from None
            self.fields.append(comp.compile(tree.body))
        self.var, self.columns = comp.var, comp.columns
        # The reference draws (N_c, U_c) for c = 0, 1, ... while field 0 uses index c;
        # drawing up to the largest index used anywhere gives the same distribution
        # and cannot leave a derivative field with an undrawn coefficient.
        self.n_coefs = max(comp.coefs, default=-1) + 1

    def evaluate(self, x: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
        """Values and derivatives of ``S`` draws: ``[S, N, fields]``.

        ``coefs`` is ``[S, 2 * n_coefs]``, laid out N0, U0, N1, U1, ...
        """
        import torch  # here, not at the top: loading a library stays torch-free

        s, n = coefs.shape[0], x.shape[0]
        env: Env = {"x": x}
        for c in range(self.n_coefs):
            env[f"N{c}"] = coefs[:, 2 * c : 2 * c + 1]  # [S, 1], broadcasts against [N]
            env[f"U{c}"] = coefs[:, 2 * c + 1 : 2 * c + 2]
        cols = []
        for f in self.fields:
            v = f(env) if callable(f) else f
            cols.append(torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(s, n))
        return torch.stack(cols, -1)


class FunctionLibrary:
    """A parsed library file that draws random function samples on given inputs.

    Args:
        name: library name, e.g. ``"F10_v1"`` (file ``libs/F10_v1.lib``).
        text: library text to use instead of the shipped file (tests, custom files).
        source: where ``text`` came from, for error messages.

    Raises:
        NotFoundError: no shipped library has that name.
        SpecError: a field is malformed or uses anything outside the allow-list; the
            message names the file and line.
    """

    def __init__(self, name: str, *, text: str | None = None, source: str | None = None) -> None:
        self.name = name
        if text is None:
            if name not in available():
                raise NotFoundError(
                    f"unknown function library {name!r}; available: {', '.join(available())}"
                )
            res = importlib.resources.files("srsweep.kernels.common") / "libs" / f"{name}.lib"
            text, source = res.read_text(), source or f"srsweep/kernels/common/libs/{name}.lib"
        self.source = source or name
        self.lines: list[_Line] = [
            _Line(t, f"{self.source}, line {i}")
            for i, t in enumerate(text.splitlines(), 1)
            if t.strip()
        ]
        if not self.lines:
            raise SpecError(self.source, ["the library has no functions"])
        widths = {len(line.fields) for line in self.lines}
        if len(widths) != 1:
            raise SpecError(self.source, [f"lines differ in field count: {sorted(widths)}"])
        names = {line.var for line in self.lines if line.var is not None}
        if len(names) > 1:
            raise SpecError(self.source, [f"one input variable per library, got {sorted(names)}"])
        self.in_var: str | None = names.pop() if names else None
        self.n_derivs = widths.pop() - 1
        self.n_columns = 1 + max((c for ln in self.lines for c in ln.columns), default=-1)

    @classmethod
    def from_file(cls, path: str | Path) -> FunctionLibrary:
        """Load a library from any file path (its name is the file stem)."""
        path = Path(path)
        return cls(path.stem, text=path.read_text(), source=str(path))

    def __len__(self) -> int:
        return len(self.lines)

    def sample(
        self,
        fun_num: int,
        x: torch.Tensor,
        iter_num: int = 1,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Evaluate freshly drawn library functions on ``x``.

        Args:
            fun_num: functions per iteration.
            x: inputs ``[N, d]`` (float, any device).
            iter_num: independent batches to draw.
            shuffle: pick lines uniformly with replacement; otherwise the first
                ``fun_num`` lines, in order.
            generator: source of all draws, on any device; the draws are moved to
                ``x``'s device, so a CPU generator gives the same samples everywhere.

        Returns:
            ``[iter_num, fun_num, N, 1 + n_derivs]``: value, then d/dx_j per column.

        Raises:
            ValueError: ``x`` has too few columns, or ``fun_num`` exceeds the number of
                lines without ``shuffle``.
        """
        import torch  # here, not at the top: loading a library stays torch-free

        if x.ndim != 2 or x.shape[1] < self.n_columns:
            raise ValueError(
                f"{self.name} needs inputs [N, >={self.n_columns}], got {list(x.shape)}"
            )
        total = iter_num * fun_num
        gdev = generator.device if generator is not None else x.device
        if shuffle and len(self.lines) > 1:
            picks = torch.randint(len(self.lines), (total,), generator=generator, device=gdev).cpu()
        elif shuffle:
            picks = torch.zeros(total, dtype=torch.long)
        else:
            if fun_num > len(self.lines):
                raise ValueError(f"{self.name} has {len(self.lines)} lines, asked for {fun_num}")
            picks = torch.arange(fun_num).repeat(iter_num)
        out: torch.Tensor | None = None
        for li in torch.unique(picks).tolist():
            line = self.lines[li]
            where = (picks == li).nonzero().squeeze(1)
            draws = []
            for _ in range(line.n_coefs):  # N_c then U_c, every one [S]
                draws.append(torch.randn(len(where), generator=generator, device=gdev))
                draws.append(torch.rand(len(where), generator=generator, device=gdev))
            coefs = torch.stack(draws, 1) if draws else torch.zeros(len(where), 0)
            vals = line.evaluate(x, coefs.to(device=x.device, dtype=x.dtype))  # [S, N, 1+d]
            if len(where) == total:
                out = vals
                break
            if out is None:
                out = x.new_empty(total, *vals.shape[1:])
            out[where.to(x.device)] = vals
        assert out is not None
        return out.reshape(iter_num, fun_num, *out.shape[1:])
