"""A small, safe, Python-like expression language that runs as ordinary torch calls.

    x = 1.1
    w = param(2.2)
    a = sigmoid(w * x)

`parse(source)` checks the text cheaply (length, bracket depth) before `ast.parse` sees it, then walks
the tree under an allow-list: only assignments, numbers, names, the operators + - * / ** @, calls of the
functions in `explorer.core.lang.ops`, the methods listed there, `.T` and list literals get through. Nothing
is ever passed to eval, exec or compile. Every failure, at parse time or while running, is an
`ExprError` carrying a 1-based line and column and a message that says what to do instead.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from explorer.core.lang import ops
from explorer.core.lang.ops import ATTRIBUTES, DTYPES, MAX_ELEMENTS, METHODS, OPS
from explorer.core.lang.syntax import (  # noqa: F401 -- limits re-exported as part of this module's API
    _BINOPS,
    _OP_SYMBOLS,
    MAX_BRACKET_DEPTH,
    MAX_INT_BITS,
    MAX_NODES,
    MAX_SOURCE_CHARS,
    MAX_TOTAL_ELEMENTS,
    MAX_TREE_DEPTH,
    ExprError,
    Statement,
    _is_number,
    _position,
    _short,
    _Step,
    _suggest,
    check,
    fold_numbers,
)

# multiply-adds all matrix products of one run may take together (about a second of CPU)
MAX_PRODUCTS = 5 * 10**9

__all__ = ["ExprError", "Program", "RunResult", "Statement", "fold_numbers", "parse"]


@dataclass
class RunResult:
    """What one run of a program produced: every named value, the output and the param leaves."""

    env: dict[str, torch.Tensor]
    output: torch.Tensor
    params: dict[str, torch.Tensor]
    output_name: str
    output_line: int = 1
    output_col: int = 1

    def require_scalar(self) -> torch.Tensor:
        """The output, or an ExprError when it has more than one element (backward needs a scalar)."""
        if self.output.numel() != 1:
            shape = tuple(self.output.shape)
            raise ExprError(
                f"backward needs a scalar output: try `.sum()` (`{self.output_name}` has shape {shape})",
                self.output_line,
                self.output_col,
            )
        return self.output


# ------------------------------------------------------------------------------------------ parse


def parse(source: str) -> Program:
    """Check `source` and return a Program; raises ExprError for anything outside the language."""
    steps, statements = check(source)
    return Program(source, steps, statements)


# ------------------------------------------------------------------------------------------ program


class Program:
    """A checked program: its statements, params and output; run it as often as you like."""

    def __init__(self, source: str, steps: list[_Step], statements: list[Statement]):
        self.source = source
        self._steps = steps
        self.statements = statements
        self.output_name = statements[-1].name
        self.param_names = [s.name for s in steps if s.is_param]
        self._rng_states: list = []

    def run(self, overrides: dict | None = None, dtype: torch.dtype | None = None) -> RunResult:
        """Run every statement as torch calls; `overrides` replace params' initial values and `dtype`
        (e.g. torch.float64) converts every floating-point leaf the program creates."""
        return _Runner(self, overrides, dtype).run()

    def param_values(self, overrides: dict | None = None, dtype: torch.dtype | None = None) -> dict:
        """{param name: detached initial value} after seed(), without running the statements after
        the last param."""
        last = max((i for i, s in enumerate(self._steps) if s.is_param), default=-1)
        with torch.no_grad():
            runner = _Runner(self, overrides, dtype)
            runner.run(stop=last + 1)
        return {name: t.detach().clone() for name, t in runner.params.items()}

    def callable(self, overrides: dict | None = None, dtype: torch.dtype | None = None) -> Callable:
        """A zero-argument function for the tracer: returns (output, {name: tensor}).

        Params' initial values are computed here, once, so that a traced call shows them as leaves
        rather than the randn/multiply that made them."""
        initial = self.param_values(overrides, dtype)

        def program_fn():
            result = _Runner(self, None, dtype, param_init=initial).run()
            return result.output, dict(result.env)

        return program_fn


class _Runner:
    """Evaluates a Program's steps in order; every exception becomes an ExprError at its node."""

    def __init__(self, program: Program, overrides, dtype, param_init: dict | None = None):
        self.program = program
        self.overrides = dict(overrides or {})
        unknown = set(self.overrides) - set(program.param_names)
        if unknown:
            name = sorted(unknown)[0]
            hint = _suggest(name, program.param_names)
            raise ExprError(f"`{name}` is not a param of this program{hint}")
        self.dtype = dtype
        self.param_init = param_init
        self.env: dict[str, torch.Tensor] = {}
        self.params: dict[str, torch.Tensor] = {}
        self.lines = program.source.splitlines()
        self.total_elements = 0
        self.products = 0  # multiply-adds of the matrix products so far
        self.generator = torch.Generator().manual_seed(0)
        self.skipped = False  # a param initialiser was skipped (its value came from param_init)

    def run(self, stop: int | None = None) -> RunResult | None:
        """Run the steps (the first `stop` of them when given; then nothing is returned)."""
        steps = self.program._steps if stop is None else self.program._steps[:stop]
        # The random stream each step starts from is recorded once per program, so a run that skips a
        # param's initialiser (a traced call) draws exactly the numbers a plain run draws.
        states = self.program._rng_states
        for index, step in enumerate(steps):
            if index < len(states):
                self.generator.set_state(states[index])
            elif not self.skipped:
                states.append(self.generator.get_state())
            self._step(step)
        if not self.skipped and len(states) == len(steps):
            states.append(self.generator.get_state())
        if stop is not None:
            return None
        last = self.program.statements[-1]
        return RunResult(self.env, self.env[last.name], self.params, last.name, last.line, last.col)

    def _pos(self, node) -> tuple[int, int]:
        return _position(self.lines, node)

    def _step(self, step: _Step) -> None:
        if step.kind == "seed":
            n = self._int(self._eval(step.value), step.value, "seed")
            if n < 0:
                raise ExprError("seed(n) needs a whole number ≥ 0", step.line, step.col)
            self.generator.manual_seed(n)
            return
        if step.is_param:
            self.env[step.name] = self.params[step.name] = self._param(step)
            return
        value = self._eval(step.value)
        self.env[step.name] = self._as_tensor(value, step.value, leaf=True)

    def _param(self, step: _Step) -> torch.Tensor:
        if self.param_init is not None and step.name in self.param_init:
            base = self.param_init[step.name]
            self.skipped = True
        else:
            with torch.no_grad():
                base = self._as_tensor(self._eval(step.value), step.value, leaf=True)
        if step.name in self.overrides:
            new = torch.as_tensor(
                self.overrides[step.name],
                # an int literal's param is float32, or the run's dtype: finite differences need float64
                dtype=base.dtype if base.is_floating_point() else (self.dtype or torch.float32),
            )
            if new.shape != base.shape:
                raise ExprError(
                    f"the value given for `{step.name}` has shape {tuple(new.shape)}, "
                    f"the program's has {tuple(base.shape)}",
                    step.line,
                    step.col,
                )
            base = new
        if not base.is_floating_point():
            dtype = self.dtype or torch.float32  # only floating tensors can require grad
        else:
            dtype = self.dtype or base.dtype
        # A fresh leaf filled in place under no_grad: the tracer sees a factory and an initialisation
        # (neither is part of the graph), so the param appears as one leaf, not as detach/clone ops.
        leaf = torch.empty(base.shape, dtype=dtype, requires_grad=True)
        with torch.no_grad():
            leaf.copy_(base)
        return leaf

    # values

    def _as_tensor(self, value, node, leaf: bool = False) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            what = "a dtype" if isinstance(value, torch.dtype) else "a tuple"
            raise ExprError(f"a value must be a number or a tensor, not {what}", *self._pos(node))
        try:
            t = torch.tensor(value)
        except (RuntimeError, OverflowError, ValueError):
            raise ExprError(f"{value} does not fit in a tensor", *self._pos(node)) from None
        return self._leaf(t) if leaf else t

    def _leaf(self, t: torch.Tensor) -> torch.Tensor:
        if self.dtype is not None and t.is_floating_point():
            t = t.to(self.dtype)
        return t

    def _count(self, value, node) -> None:
        if isinstance(value, torch.Tensor):
            self.total_elements += value.numel()
            if self.total_elements > MAX_TOTAL_ELEMENTS:
                raise ExprError(
                    f"the program creates more than {MAX_TOTAL_ELEMENTS:,} tensor elements in total",
                    *self._pos(node),
                )

    def _count_products(self, spec: ops.OpSpec, a: torch.Tensor, b: torch.Tensor) -> None:
        """Keep the matrix products of one run cheap: a thousand (1000, 1000) @ (1000, 1000) would take
        minutes, and finite differences run the program many times."""
        if spec.name == "linear":
            out = tuple(a.shape[:-1]) + (tuple(b.shape[:1]) if b.dim() == 2 else ())
        else:
            out = _matmul_shape(tuple(a.shape), tuple(b.shape))
        self.products += math.prod(out) * a.shape[-1]
        if self.products > MAX_PRODUCTS:
            raise ExprError(f"the matrix products of this program need more than {MAX_PRODUCTS:,} "
                            "multiply-adds; use smaller tensors")

    def _eval(self, node: ast.expr):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return DTYPES[node.id] if node.id in DTYPES else self.env[node.id]
        if isinstance(node, ast.List):
            return self._literal(node)
        if isinstance(node, ast.Tuple):
            return tuple(self._eval(e) for e in node.elts)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand)
            if isinstance(node.op, ast.UAdd):
                return value
            if isinstance(value, int | float):
                return -value
            return self._apply(node, OPS["neg"], [value])
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Attribute):
            value = self._eval(node.value)
            if not isinstance(value, torch.Tensor):
                value = self._as_tensor(value, node.value, leaf=True)
            return self._apply(node, OPS[ATTRIBUTES[node.attr]], [value])
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExprError(f"{type(node).__name__} is not allowed here", *self._pos(node))

    def _literal(self, node: ast.List):
        def nested(n):
            if isinstance(n, ast.List):
                return [nested(e) for e in n.elts]
            v = self._eval(n)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ExprError(
                    "a tensor literal holds plain numbers, e.g. [[1.0, 2.0], [3.0, 4.0]]", *self._pos(n)
                )
            return v

        data = nested(node)
        try:
            t = torch.tensor(data)
        except (RuntimeError, OverflowError, ValueError, TypeError) as exc:
            if "overflow" in str(exc).lower() or isinstance(exc, OverflowError):
                message = "a number in this tensor literal is too large for its dtype"
            else:
                message = "the rows of a tensor literal must all have the same length"
            raise ExprError(message, *self._pos(node)) from None
        t = self._leaf(t)
        self._count(t, node)
        return t

    def _binop(self, node: ast.BinOp):
        left, right = self._eval(node.left), self._eval(node.right)
        name = _BINOPS[type(node.op)]
        if _is_number(left) and _is_number(right) and name != "matmul":
            return self._fold(node, name, left, right)
        for v, side in ((left, node.left), (right, node.right)):
            if not isinstance(v, torch.Tensor | int | float) or isinstance(v, bool):
                raise ExprError("operators work on numbers and tensors", *self._pos(side))
        # A plain number next to a tensor becomes a constant leaf, so the graph (and the chain rule)
        # sees both operands: `3 - x` and `x - 3` differ, and the formula needs the 3.
        if _is_number(left) and isinstance(right, torch.Tensor):
            left = self._constant_like(left, right, node.left)
        elif _is_number(right) and isinstance(left, torch.Tensor):
            right = self._constant_like(right, left, node.right)
        return self._apply(node, OPS[name], [left, right])

    def _constant_like(self, value, other: torch.Tensor, node) -> torch.Tensor:
        """A number as a 0-d tensor that promotes with `other` the way the plain number would."""
        if other.is_floating_point():
            dtype = other.dtype
        else:
            dtype = torch.int64 if isinstance(value, int) else (self.dtype or torch.get_default_dtype())
        try:
            return torch.tensor(value, dtype=dtype)
        except (RuntimeError, OverflowError, ValueError):
            raise ExprError(
                f"{_short(value)} does not fit in {str(dtype).removeprefix('torch.')}", *self._pos(node)
            ) from None

    def _fold(self, node, name: str, a, b):
        try:
            return fold_numbers(name, a, b)
        except ExprError as exc:
            raise ExprError(exc.message, *self._pos(node)) from None

    def _call(self, node: ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            spec = OPS[METHODS[func.attr]]
            positional = [self._eval(func.value)]
        else:
            spec = OPS[func.id]
            positional = []
        positional += [self._eval(a) for a in node.args]
        keywords = {kw.arg: (self._eval(kw.value), kw) for kw in node.keywords}
        args = self._bind(node, spec, positional, keywords)
        return self._apply(node, spec, args)

    def _bind(self, node, spec: ops.OpSpec, positional: list, keywords: dict) -> list:
        """Convert each argument to the kind the op takes; returns the full positional list."""
        out = []
        rest = list(positional)
        for arg in spec.args:
            if arg.variadic:
                out.extend(self._shape(rest, node, spec))
                rest = []
                break
            if rest:
                value, where = rest.pop(0), node
            elif arg.name in keywords:
                value, where = keywords.pop(arg.name)
            else:
                value, where = arg.default, None
            if where is not None and not (value is None and arg.default is None):
                value = self._convert(value, arg, where, spec)
            out.append(value)
        return out

    def _convert(self, value, arg: ops.Arg, node, spec: ops.OpSpec):
        if arg.kind == "tensor":
            if isinstance(value, torch.Tensor):
                return value
            if _is_number(value):
                # sigmoid(2.0) works like torch.sigmoid(torch.tensor(2.0)); operators keep plain numbers
                return value if spec.kind == "operator" else self._as_tensor(value, node, leaf=True)
            what = "a dtype" if isinstance(value, torch.dtype) else "a tuple"
            raise ExprError(
                f"`{spec.name}` needs a tensor or number for `{arg.name}`, not {what}", *self._pos(node)
            )
        if arg.kind == "int":
            return self._int(value, node, f"{spec.name}'s `{arg.name}`")
        if arg.kind == "float":
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                return float(value)
            if _is_number(value):
                return float(value)
            raise ExprError(f"`{spec.name}` needs a number for `{arg.name}`", *self._pos(node))
        if arg.kind == "dtype":
            if isinstance(value, torch.dtype):
                return value
            raise ExprError(f"`{spec.name}` needs a dtype ({' '.join(DTYPES)})", *self._pos(node))
        return value

    def _int(self, value, node, what: str) -> int:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExprError(f"{what} needs a whole number", *self._pos(node))
        if abs(value) > 2**62:
            raise ExprError(f"{what}: {value} is too large", *self._pos(node))
        return value

    def _shape(self, values: list, node, spec: ops.OpSpec) -> list[int]:
        if len(values) == 1 and isinstance(values[0], tuple | list):
            values = list(values[0])
        elif len(values) == 1 and isinstance(values[0], torch.Tensor) and values[0].dim() == 1:
            if values[0].is_floating_point():
                raise ExprError(f"`{spec.name}` needs whole-number sizes", *self._pos(node))
            if values[0].numel() > 32:
                raise ExprError(f"`{spec.name}`: too many dimensions", *self._pos(node))
            values = values[0].tolist()
        if len(values) > 32:
            raise ExprError(f"`{spec.name}`: too many dimensions ({len(values)})", *self._pos(node))
        if not values and spec.name in ("reshape", "view"):
            raise ExprError(f"`{spec.name}` needs the new shape, e.g. {spec.name}(x, 2, 3)", *self._pos(node))
        return [self._int(v, node, f"`{spec.name}` sizes") for v in values]

    def _apply(self, node, spec: ops.OpSpec, args: list):
        """Run one op with size and shape checks first; torch's errors become ExprErrors here."""
        where = self._pos(node)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if (
            spec.name == "to"
            and self.dtype is not None
            and isinstance(args[1], torch.dtype)
            and args[1].is_floating_point
        ):
            # a run at a chosen precision (float64 finite differences) keeps it through casts
            args = [args[0], self.dtype]
        try:
            _precheck(spec, args, tensors)
            if spec.name in ("matmul", "linear"):
                self._count_products(spec, args[0], args[1])
            result = spec.fn(self.generator, *args) if spec.needs_rng else spec.fn(*args)
        except ExprError as exc:
            raise ExprError(exc.message, *where) from None
        except (
            RuntimeError,
            ValueError,
            TypeError,
            IndexError,
            OverflowError,
            ZeroDivisionError,
            MemoryError,
            NotImplementedError,
            AttributeError,
            KeyError,
        ) as exc:
            raise ExprError(_translate(spec, exc, tensors), *where) from None
        if spec.kind == "constructor" and isinstance(result, torch.Tensor):
            result = self._leaf(result)
        self._count(result, node)
        return result


def _shape_text(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else "a number"


def _precheck(spec: ops.OpSpec, args: list, tensors: list[torch.Tensor]) -> None:
    """Catch shape mismatches and oversized results before torch allocates anything."""
    symbol = spec.label
    if spec.kind == "operator" and len(args) == 2 and spec.name != "matmul":
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else () for a in args]
        try:
            out = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ExprError(
                f"shapes {shapes[0]} and {shapes[1]} do not broadcast for `{symbol}`: sizes "
                "must match or be 1, compared from the right"
            ) from None
        _check_result(out, spec)
    elif spec.name in ("matmul", "linear"):
        a, b = args[0], args[1]
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            raise ExprError(f"`{spec.name}` needs two tensors, got {_shape_text(a)} and {_shape_text(b)}")
        if a.dim() == 0 or b.dim() == 0:
            raise ExprError(
                f"`{spec.name}` needs tensors with at least one dimension, got shapes "
                f"{tuple(a.shape)} and {tuple(b.shape)}: use `*` for scalars"
            )
        if spec.name == "matmul":
            inner_b = b.shape[-2] if b.dim() >= 2 else b.shape[0]
            if a.shape[-1] != inner_b:
                raise ExprError(
                    f"matmul needs matching inner sizes: {tuple(a.shape)} @ {tuple(b.shape)} "
                    f"pairs {a.shape[-1]} with {inner_b}; try `.T` on one side"
                )
        elif a.shape[-1] != b.shape[-1]:
            raise ExprError(
                f"linear needs x's last size to equal W's last size: x {tuple(a.shape)}, "
                f"W {tuple(b.shape)} (W is shaped (out, in))"
            )
        floats = {t.dtype for t in tensors}
        if len(floats) > 1:
            names = " and ".join(sorted(str(d).removeprefix("torch.") for d in floats))
            raise ExprError(
                f"`{spec.name}` needs tensors of one dtype, got {names}: convert with to(x, float32)"
            )
        # shapes worked out by hand: running the op on meta tensors would show up in a trace
        if spec.name == "linear":
            out = tuple(a.shape[:-1]) + (tuple(b.shape[:1]) if b.dim() == 2 else ())
        else:
            out = _matmul_shape(tuple(a.shape), tuple(b.shape))
        _check_result(out, spec)


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    """The shape torch.matmul returns for inputs of these shapes (inner sizes already checked)."""
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(b) == 1:
        return a[:-1]
    if len(a) == 1:
        return b[:-2] + b[-1:]
    try:
        batch = tuple(torch.broadcast_shapes(a[:-2], b[:-2]))
    except RuntimeError:
        raise ExprError(f"matmul cannot broadcast the batch sizes of {a} and {b}") from None
    return batch + (a[-2], b[-1])


def _check_result(shape: tuple, spec: ops.OpSpec) -> None:
    n = math.prod(shape) if shape else 1
    if n > MAX_ELEMENTS:
        raise ExprError(
            f"`{spec.label}` would make a tensor of shape {tuple(shape)} ({n:,} elements); "
            f"the limit is {MAX_ELEMENTS:,}"
        )


def _translate(spec: ops.OpSpec, exc: BaseException, tensors: list[torch.Tensor]) -> str:
    """A torch error as one actionable line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    dtypes = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors}))
    name = spec.name
    if isinstance(exc, MemoryError):
        return f"`{name}` ran out of memory"
    if "target with class probabilities" in text:
        return (
            f"`{name}`: a target shaped like the logits is read as class probabilities and must be "
            "floating-point (e.g. [[0.0, 1.0]]); for class indices give one whole number per row of "
            "logits, which need one score per class (e.g. cross_entropy([[2.0, 0.5]], [0]))"
        )
    if (
        "not implemented for" in text
        or "floating point" in text
        or "Float but found" in text
        or "found dtype Long" in text
    ):
        return (
            f"`{name}` needs floating-point tensors (got {dtypes or 'numbers'}): write numbers with a "
            "decimal point (1.0) or convert with to(x, float32)"
        )
    if "view size is not compatible" in text:
        return "`view` needs a contiguous tensor (this one is a transposed view): use reshape(...) instead"
    if "is invalid for input of size" in text:
        shape = text.split("'")[1] if "'" in text else "?"
        dims = shape.strip("[]").replace(" ", "").split(",")
        shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        size = text.rsplit(" ", 1)[-1]
        return f"`{name}`: shape {shape} does not fit a tensor of {size} elements"
    if "Dimension out of range" in text:
        found = re.search(r"range of \[(-?\d+), (-?\d+)\], but got (-?\d+)", text)
        shape = tuple(tensors[0].shape) if tensors else ()
        if found:
            low, high, got = found.groups()
            return (
                f"`{name}`: dimension {got} does not exist in a tensor of shape {shape} (use {low} to {high})"
            )
        return f"`{name}`: a dimension is out of range for shape {shape}"
    target = re.search(r"Target (-?\d+) is out of bounds", text)
    if target and tensors:
        classes = tensors[0].shape[-1] if tensors[0].dim() else 1
        return (
            f"`{name}`: target class {target.group(1)} does not exist: there are {classes} classes "
            f"(0 to {classes - 1})"
        )
    if "expected target dtype to be Long" in text or "expected scalar type Long" in text:
        return (
            f"`{name}` needs class indices as whole numbers (e.g. [0, 2]), or probabilities shaped "
            "like the logits"
        )
    if "all elements of input should be between 0 and 1" in text:
        return f"`{name}` needs probabilities between 0 and 1: apply sigmoid first, or use bce_with_logits"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"`{name}`: {text}"
