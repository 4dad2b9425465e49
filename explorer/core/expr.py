"""A small, safe, Python-like expression language that runs as ordinary torch calls.

    x = 1.1
    w = param(2.2)
    a = sigmoid(w * x)

`parse(source)` checks the text cheaply (length, bracket depth) before `ast.parse` sees it, then walks
the tree under an allow-list: only assignments, numbers, names, the operators + - * / ** @, calls of the
functions in `explorer.core.ops`, the methods listed there, `.T` and list literals get through. Nothing
is ever passed to eval, exec or compile. Every failure, at parse time or while running, is an
`ExprError` carrying a 1-based line and column and a message that says what to do instead.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from explorer.core import ops
from explorer.core.ops import ATTRIBUTES, DTYPES, FUNCTIONS, MAX_ELEMENTS, METHODS, OPS

# Limits that make hostile input cheap to reject before any work is done.
MAX_SOURCE_CHARS = 20_000
MAX_BRACKET_DEPTH = 64  # ( [ { nesting, checked on the raw text before ast.parse
MAX_TREE_DEPTH = 100  # syntax-tree depth (catches `- - - - x` and long chains without brackets)
MAX_NODES = 5_000
MAX_INT_BITS = 4_096  # constant arithmetic on whole numbers stays below this size
MAX_TOTAL_ELEMENTS = 20 * MAX_ELEMENTS  # all tensors one run creates, together


class ExprError(Exception):
    """The language's only error: a message with the 1-based line and column it is about."""

    def __init__(self, message: str, line: int = 1, col: int = 1):
        super().__init__(message)
        self.message = message
        self.line = int(line)
        self.col = int(col)

    def __str__(self) -> str:
        return f"line {self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class Statement:
    """One `name = expression` line of a program."""

    name: str
    line: int
    col: int
    source_text: str


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
                self.output_line, self.output_col)
        return self.output


@dataclass(frozen=True)
class _Step:
    kind: str  # "assign" | "seed"
    name: str | None
    value: ast.expr  # for param statements: the argument of param(...)
    line: int
    col: int
    is_param: bool = False


# ------------------------------------------------------------------------------------------ parse


def parse(source: str) -> Program:
    """Check `source` and return a Program; raises ExprError for anything outside the language."""
    if not isinstance(source, str):
        raise ExprError("a program is text")
    _prescan(source)
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise ExprError(_syntax_message(exc), exc.lineno or 1, max(exc.offset or 1, 1)) from None
    except (MemoryError, RecursionError, ValueError, OverflowError):
        raise ExprError("the program is nested too deeply or is too large to read") from None
    checker = _Checker(source)
    steps = checker.check(tree)
    return Program(source, steps, checker.statements)


def _prescan(source: str) -> None:
    """Reject what is cheap to see on the raw text: size, quotes, NUL bytes, deep brackets."""
    depth = 0
    line, col = 1, 0
    in_comment = False
    previous = ""
    # the scan stops at the size limit, so the cost is bounded however long the text is; it runs before
    # the size check so that 10,000 nested brackets are reported as what they are
    for ch in source[: MAX_SOURCE_CHARS + 1]:
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
            previous = ch
            continue
        col += 1
        if in_comment:
            continue
        if ch == "#":
            in_comment = True
        elif ch in "\"'":
            if previous.lower() in ("f", "r", "b", "u"):
                kind = "f-strings are" if previous.lower() == "f" else "quoted strings are"
                raise ExprError(f"{kind} not allowed: the language has numbers and tensors only",
                                line, col - 1)
            raise ExprError("quoted text is not allowed: the language has numbers and tensors only",
                            line, col)
        elif ch in "([{":
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                raise ExprError(f"brackets are nested more than {MAX_BRACKET_DEPTH} deep", line, col)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "\x00":
            raise ExprError("the program contains a NUL character", line, col)
        previous = ch
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprError(f"the program is {len(source):,} characters long; the limit is {MAX_SOURCE_CHARS:,}")


def _syntax_message(exc: SyntaxError) -> str:
    msg = (exc.msg or "invalid syntax").strip()
    if msg.startswith("invalid syntax"):
        text = (exc.text or "").strip()
        if text.count("=") == 0 and text:
            return "invalid syntax: each line should look like `name = expression`"
        return "invalid syntax: check for a missing operator, bracket or comma"
    return msg


_FORBIDDEN: dict[type, str] = {
    ast.Lambda: "lambdas are not allowed here",
    ast.ListComp: "comprehensions are not allowed here",
    ast.SetComp: "comprehensions are not allowed here",
    ast.DictComp: "comprehensions are not allowed here",
    ast.GeneratorExp: "generator expressions are not allowed here",
    ast.JoinedStr: "f-strings are not allowed here",
    ast.FormattedValue: "f-strings are not allowed here",
    ast.Subscript: "indexing with [...] is not supported here: use sum, mean, max, reshape or transpose",
    ast.Slice: "slices are not supported here",
    ast.Starred: "`*` unpacking is not allowed here: pass sizes one by one, e.g. randn(2, 3)",
    ast.Dict: "dictionaries are not allowed here",
    ast.Set: "sets are not allowed here",
    ast.Compare: "comparisons are not supported here",
    ast.BoolOp: "`and` / `or` are not supported here",
    ast.IfExp: "`... if ... else ...` is not supported here",
    ast.NamedExpr: "`:=` is not allowed here: write `name = expression` on its own line",
    ast.Await: "`await` is not allowed here",
    ast.Yield: "`yield` is not allowed here",
    ast.YieldFrom: "`yield` is not allowed here",
    ast.Import: "`import` is not allowed here",
    ast.ImportFrom: "`import` is not allowed here",
    ast.FunctionDef: "defining functions is not allowed here",
    ast.AsyncFunctionDef: "defining functions is not allowed here",
    ast.ClassDef: "classes are not allowed here",
    ast.For: "loops are not allowed here",
    ast.AsyncFor: "loops are not allowed here",
    ast.While: "loops are not allowed here",
    ast.If: "`if` statements are not allowed here",
    ast.With: "`with` is not allowed here",
    ast.AsyncWith: "`with` is not allowed here",
    ast.Try: "`try` is not allowed here",
    ast.Raise: "`raise` is not allowed here",
    ast.Assert: "`assert` is not allowed here",
    ast.Delete: "`del` is not allowed here",
    ast.Global: "`global` is not allowed here",
    ast.Nonlocal: "`nonlocal` is not allowed here",
    ast.Return: "`return` is not allowed here: the output is the last assigned name",
    ast.AugAssign: "`+=` and friends are not supported: write `new_name = old_name + ...`",
    ast.AnnAssign: "type annotations are not supported: write `name = expression`",
    ast.Pass: "`pass` is not needed here",
    ast.Break: "`break` is not allowed here",
    ast.Continue: "`continue` is not allowed here",
}
if hasattr(ast, "TryStar"):
    _FORBIDDEN[ast.TryStar] = "`try` is not allowed here"
if hasattr(ast, "Match"):
    _FORBIDDEN[ast.Match] = "`match` is not allowed here"

_ALLOWED = (
    ast.Module, ast.Assign, ast.Expr, ast.Name, ast.Load, ast.Store, ast.Constant, ast.BinOp, ast.UnaryOp,
    ast.Call, ast.Attribute, ast.List, ast.Tuple, ast.keyword,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult, ast.USub, ast.UAdd,
)
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow",
           ast.MatMult: "matmul"}
_OP_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
               ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
               ast.BitAnd: "&", ast.BitXor: "^", ast.Invert: "~", ast.Not: "not"}


def _position(lines: list[str], node) -> tuple[int, int]:
    """1-based line and character column (ast counts UTF-8 bytes). A method call or `.T` is located at
    its dot, so that in `a.T.sum(1)` an error of `sum` points at `.sum`, not at `a`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node = node.func
    if isinstance(node, ast.Attribute) and getattr(node.value, "end_lineno", None) is not None:
        line, offset = node.value.end_lineno, node.value.end_col_offset or 0
    else:
        line, offset = getattr(node, "lineno", 1) or 1, getattr(node, "col_offset", 0) or 0
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return line, len(text.encode("utf-8")[:offset].decode("utf-8", errors="replace")) + 1


def _suggest(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class _Checker:
    """Walks the syntax tree once: allow-list of node types, sizes, names defined before use, arity."""

    def __init__(self, source: str):
        self.lines = source.splitlines()
        self.source = source
        self.defined: dict[str, int] = {}  # name -> line it was assigned on
        self.statements: list[Statement] = []

    def pos(self, node) -> tuple[int, int]:
        """1-based line and character column of a node (of the `.` for methods and `.T`)."""
        return _position(self.lines, node)

    def fail(self, node, message: str):
        raise ExprError(message, *self.pos(node))

    def check(self, tree: ast.Module) -> list[_Step]:
        self._check_shape_of_tree(tree)
        steps = []
        for stmt in tree.body:
            steps.append(self._statement(stmt))
        if not self.statements:
            raise ExprError("the program assigns nothing: write lines like `y = sigmoid(2.0)`")
        return steps

    def _check_shape_of_tree(self, tree: ast.AST) -> None:
        count = 0
        stack = [(tree, 0, tree)]  # (node, depth, nearest node with a position, for error messages)
        while stack:
            node, depth, where = stack.pop()
            if hasattr(node, "lineno"):
                where = node
            count += 1
            if count > MAX_NODES:
                raise ExprError(f"the program is too large (more than {MAX_NODES:,} syntax nodes)")
            if depth > MAX_TREE_DEPTH:
                self.fail(where, f"the expression is nested more than {MAX_TREE_DEPTH} levels deep")
            if not isinstance(node, _ALLOWED):
                self.fail(where, self._forbidden_message(node))
            # reversed, so that the walk goes left to right and reports the first problem in the text
            stack.extend((child, depth + 1, where) for child in reversed(list(ast.iter_child_nodes(node))))

    @staticmethod
    def _forbidden_message(node: ast.AST) -> str:
        if type(node) in _FORBIDDEN:
            return _FORBIDDEN[type(node)]
        if type(node) in _OP_SYMBOLS:
            return f"the operator `{_OP_SYMBOLS[type(node)]}` is not supported here: use + - * / ** @"
        return f"{type(node).__name__} is not allowed here"

    # statements

    def _statement(self, stmt: ast.stmt) -> _Step:
        line, col = self.pos(stmt)
        if isinstance(stmt, ast.Expr):
            call = stmt.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "seed":
                self._call(call, allow_special=True)
                return _Step("seed", None, call.args[0] if call.args else call.keywords[0].value, line, col)
            self.fail(stmt, "each line must assign a name, e.g. `y = ...` (or call `seed(n)`)")
        assert isinstance(stmt, ast.Assign)  # the allow-list leaves only these two statement kinds
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            self.fail(stmt, "assign exactly one name per line, e.g. `z = w * x + b`")
        name = stmt.targets[0].id
        self._check_new_name(stmt.targets[0], name)
        value = stmt.value
        is_param = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id == "param")
        if is_param:
            self._call(value, allow_special=True)
            value = value.args[0] if value.args else value.keywords[0].value
        else:
            self._expr(value)
        self.defined[name] = line
        text = ast.get_source_segment(self.source, stmt) or name
        self.statements.append(Statement(name, line, col, text))
        return _Step("assign", name, value, line, col, is_param)

    def _check_new_name(self, node, name: str) -> None:
        if name.startswith("_"):
            self.fail(node, f"`{name}`: names may not start with `_`")
        if name in FUNCTIONS or name in DTYPES:
            self.fail(node, f"`{name}` is the name of a function or dtype; choose another name")
        if name in self.defined:
            self.fail(node, f"`{name}` is already assigned on line {self.defined[name]}; "
                            "use a new name so every value keeps its own node")

    # expressions

    def _expr(self, node: ast.expr) -> None:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or value is None or value is Ellipsis:
                self.fail(node, f"`{value}` is not a number: use numbers and tensors")
            if isinstance(value, complex):
                self.fail(node, "complex numbers are not supported")
            if not isinstance(value, int | float):
                self.fail(node, "only numbers are allowed as constants")
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                self.fail(node, self._forbidden_message(node.op))
            self._expr(node.left)
            self._expr(node.right)
            self._constant(node)  # refuses `9**9**9**9` here, before anything runs
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                self.fail(node, self._forbidden_message(node.op))
            self._expr(node.operand)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.List | ast.Tuple):
            for elt in node.elts:
                self._expr(elt)
        else:
            self.fail(node, self._forbidden_message(node))

    def _name(self, node: ast.Name) -> None:
        name = node.id
        if name in self.defined or name in DTYPES:
            return
        if name in FUNCTIONS:
            self.fail(node, f"`{name}` is a function: call it, e.g. `{OPS[name].signature()}`")
        hint = _suggest(name, list(self.defined) + list(DTYPES) + list(FUNCTIONS))
        self.fail(node, f"`{name}` is not defined here{hint}")

    def _attribute(self, node: ast.Attribute) -> None:
        self._expr(node.value)  # the leftmost problem is reported first
        attr = node.attr
        if attr not in ATTRIBUTES:
            if attr in METHODS:
                self.fail(node, f"`.{attr}` is a method: call it, e.g. `.{attr}()`")
            allowed = " ".join(f".{a}" for a in ATTRIBUTES) + " " + " ".join(f".{m}()" for m in METHODS)
            hint = _suggest(attr, list(ATTRIBUTES) + list(METHODS)) if not attr.startswith("_") else ""
            self.fail(node, f"`.{attr}` is not available here{hint} (allowed: {allowed})")

    def _call(self, node: ast.Call, allow_special: bool = False) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            name = func.id
            if name not in FUNCTIONS:
                if name in self.defined:
                    self.fail(func, f"`{name}` is a value, not a function")
                hint = _suggest(name, FUNCTIONS - {"T"})
                self.fail(func, f"`{name}` is not a function here{hint}")
            if name in ("param", "seed") and not allow_special:
                if name == "param":
                    self.fail(func, "param(...) must be the whole right-hand side, e.g. `w = param(2.2)`")
                self.fail(func, "seed(n) goes on a line of its own")
            spec, receiver = OPS[name], 0
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner is not None and owner not in self.defined and func.attr in FUNCTIONS:
                # torch.sigmoid(x), F.relu(x), np.exp(x): the language calls its functions by plain name
                self.fail(func.value, f"write `{func.attr}(...)` without `{owner}.`: functions are called "
                                      "by their plain name here")
            if func.attr not in METHODS:
                if func.attr in ATTRIBUTES:
                    self.fail(func, f"`.{func.attr}` is not a method: write `x.{func.attr}` without brackets")
                hint = _suggest(func.attr, METHODS) if not func.attr.startswith("_") else ""
                methods = " ".join(f".{m}()" for m in METHODS)
                self.fail(func, f"`.{func.attr}()` is not an allowed method{hint} "
                                f"(allowed: {methods} and .T)")
            self._expr(func.value)
            spec, receiver = OPS[METHODS[func.attr]], 1
        else:
            self.fail(node, "only named functions can be called, e.g. `sigmoid(x)`")
        for arg in node.args:
            self._expr(arg)
        names = {a.name for a in spec.args[receiver:] if not a.variadic}
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(kw, "`**` arguments are not allowed here")
            if kw.arg not in names:
                hint = _suggest(kw.arg, names)
                self.fail(kw, f"`{spec.name}` has no argument `{kw.arg}`{hint}: {spec.signature()}")
            self._expr(kw.value)
        self._arity(node, spec, receiver)
        if spec.name in ("randn", "rand", "zeros", "ones", "eye", "arange"):
            self._check_size(node, spec)

    def _constant(self, node):
        """The value of a numbers-only expression (folded safely), or None when it is not one."""
        if isinstance(node, ast.Constant):
            return node.value if _is_number(node.value) else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self._constant(node.operand)
            return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS and not isinstance(node.op, ast.MatMult):
            a = self._constant(node.left)
            b = None if a is None else self._constant(node.right)
            if b is None:
                return None
            try:
                return fold_numbers(_BINOPS[type(node.op)], a, b)
            except ExprError as exc:
                self.fail(node, exc.message)
        return None

    def _check_size(self, node: ast.Call, spec: ops.OpSpec) -> None:
        """Constructors with constant sizes are checked against the element limit before running."""
        args = node.args
        if len(args) == 1 and isinstance(args[0], ast.Tuple | ast.List):
            args = args[0].elts
        sizes = [self._constant(a) for a in args]
        if not sizes or not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            return
        if any(v < 0 for v in sizes):
            self.fail(node, f"a size cannot be negative (got {min(sizes)})")
        if spec.name == "eye":
            sizes = sizes * 2
        n = math.prod(sizes)
        if n > MAX_ELEMENTS:
            self.fail(node, f"{spec.name}{tuple(sizes)} would hold {n:,} elements; "
                            f"the limit is {MAX_ELEMENTS:,}")

    def _arity(self, node: ast.Call, spec: ops.OpSpec, receiver: int) -> None:
        low, high = spec.arity
        given = len(node.args) + len(node.keywords) + receiver
        if given < low or (high is not None and len(node.args) + receiver > high):
            self.fail(node, f"`{spec.name}` takes {_count_text(low - receiver, high, receiver)}, "
                            f"got {given - receiver}: {spec.signature()}")


def _count_text(low: int, high: int | None, receiver: int) -> str:
    if high is None:
        return f"at least {low} argument{'s' * (low != 1)}"
    high -= receiver
    if low == high:
        return f"{low} argument{'s' * (low != 1)}"
    return f"{low} to {high} arguments"


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
            new = torch.as_tensor(self.overrides[step.name], dtype=base.dtype if base.is_floating_point()
                                  else torch.float32)
            if new.shape != base.shape:
                raise ExprError(f"the value given for `{step.name}` has shape {tuple(new.shape)}, "
                                f"the program's has {tuple(base.shape)}", step.line, step.col)
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
                raise ExprError(f"the program creates more than {MAX_TOTAL_ELEMENTS:,} tensor elements "
                                "in total", *self._pos(node))

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
                raise ExprError("a tensor literal holds plain numbers, e.g. [[1.0, 2.0], [3.0, 4.0]]",
                                *self._pos(n))
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
            raise ExprError(f"{_short(value)} does not fit in {str(dtype).removeprefix('torch.')}",
                            *self._pos(node)) from None

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
            raise ExprError(f"`{spec.name}` needs a tensor or number for `{arg.name}`, not {what}",
                            *self._pos(node))
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
        if spec.name == "to" and self.dtype is not None and isinstance(args[1], torch.dtype) \
                and args[1].is_floating_point:
            # a run at a chosen precision (float64 finite differences) keeps it through casts
            args = [args[0], self.dtype]
        try:
            _precheck(spec, args, tensors)
            result = spec.fn(self.generator, *args) if spec.needs_rng else spec.fn(*args)
        except ExprError as exc:
            raise ExprError(exc.message, *where) from None
        except (RuntimeError, ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError,
                MemoryError, NotImplementedError, AttributeError, KeyError) as exc:
            raise ExprError(_translate(spec, exc, tensors), *where) from None
        if spec.kind == "constructor" and isinstance(result, torch.Tensor):
            result = self._leaf(result)
        self._count(result, node)
        return result


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"


def fold_numbers(name: str, a, b):
    """Arithmetic on two plain numbers, refusing results too large to compute quickly (`9**9**9**9`)."""
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[name]
    a_text, b_text = _short(a), _short(b)
    if name == "pow" and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        # decided from the sizes alone, before any work: the result would have about b·log2|a| bits
        if b * abs(a).bit_length() > MAX_INT_BITS:
            raise ExprError(f"the exponent in `{a_text} ** {b_text}` is too large to compute")
    try:
        result = OPS[name].fn(a, b)
    except ZeroDivisionError:
        raise ExprError(f"division by zero in `{a_text} {symbol} {b_text}`") from None
    except OverflowError:
        raise ExprError(f"`{a_text} {symbol} {b_text}` is too large") from None
    if isinstance(result, complex):
        raise ExprError(f"`{a_text} {symbol} {b_text}` is not a real number")
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise ExprError(f"`{symbol}` makes a number too large to compute with")
    if isinstance(result, float) and not math.isfinite(result) and math.isfinite(a) and math.isfinite(b):
        raise ExprError(f"`{a_text} {symbol} {b_text}` overflows")
    return result


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


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
            raise ExprError(f"shapes {shapes[0]} and {shapes[1]} do not broadcast for `{symbol}`: sizes "
                            "must match or be 1, compared from the right") from None
        _check_result(out, spec)
    elif spec.name in ("matmul", "linear"):
        a, b = args[0], args[1]
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            raise ExprError(f"`{spec.name}` needs two tensors, got {_shape_text(a)} and {_shape_text(b)}")
        if a.dim() == 0 or b.dim() == 0:
            raise ExprError(f"`{spec.name}` needs tensors with at least one dimension, got shapes "
                            f"{tuple(a.shape)} and {tuple(b.shape)}: use `*` for scalars")
        if spec.name == "matmul":
            inner_b = b.shape[-2] if b.dim() >= 2 else b.shape[0]
            if a.shape[-1] != inner_b:
                raise ExprError(f"matmul needs matching inner sizes: {tuple(a.shape)} @ {tuple(b.shape)} "
                                f"pairs {a.shape[-1]} with {inner_b}; try `.T` on one side")
        elif a.shape[-1] != b.shape[-1]:
            raise ExprError(f"linear needs x's last size to equal W's last size: x {tuple(a.shape)}, "
                            f"W {tuple(b.shape)} (W is shaped (out, in))")
        floats = {t.dtype for t in tensors}
        if len(floats) > 1:
            names = " and ".join(sorted(str(d).removeprefix("torch.") for d in floats))
            raise ExprError(f"`{spec.name}` needs tensors of one dtype, got {names}: "
                            "convert with to(x, float32)")
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
        raise ExprError(f"`{spec.label}` would make a tensor of shape {tuple(shape)} ({n:,} elements); "
                        f"the limit is {MAX_ELEMENTS:,}")


def _translate(spec: ops.OpSpec, exc: BaseException, tensors: list[torch.Tensor]) -> str:
    """A torch error as one actionable line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    dtypes = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors}))
    name = spec.name
    if isinstance(exc, MemoryError):
        return f"`{name}` ran out of memory"
    if "not implemented for" in text or "floating point" in text or "Float but found" in text \
            or "found dtype Long" in text:
        return (f"`{name}` needs floating-point tensors (got {dtypes or 'numbers'}): write numbers with a "
                "decimal point (1.0) or convert with to(x, float32)")
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
            return (f"`{name}`: dimension {got} does not exist in a tensor of shape {shape} "
                    f"(use {low} to {high})")
        return f"`{name}`: a dimension is out of range for shape {shape}"
    target = re.search(r"Target (-?\d+) is out of bounds", text)
    if target and tensors:
        classes = tensors[0].shape[-1] if tensors[0].dim() else 1
        return (f"`{name}`: target class {target.group(1)} does not exist: there are {classes} classes "
                f"(0 to {classes - 1})")
    if "expected target dtype to be Long" in text or "expected scalar type Long" in text:
        return (f"`{name}` needs class indices as whole numbers (e.g. [0, 2]), or probabilities shaped "
                "like the logits")
    if "all elements of input should be between 0 and 1" in text:
        return f"`{name}` needs probabilities between 0 and 1: apply sigmoid first, or use bce_with_logits"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"`{name}`: {text}"
