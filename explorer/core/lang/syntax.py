"""Parse-time half of the expression language: cheap text checks, the allow-list walk, safe folding.

`check(source)` returns the steps of a program or raises `ExprError`; nothing here runs torch code.
`explorer.core.lang.program` is the public face (parse, Program); this module holds what it relies on.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass

from explorer.core.lang import ops
from explorer.core.lang.ops import ATTRIBUTES, DTYPES, FUNCTIONS, MAX_ELEMENTS, METHODS, OPS

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


@dataclass(frozen=True)
class _Step:
    kind: str  # "assign" | "seed"
    name: str | None
    value: ast.expr  # for param statements: the argument of param(...)
    line: int
    col: int
    is_param: bool = False


# ------------------------------------------------------------------------------------------ check


def check(source: str) -> tuple[list[_Step], list[Statement]]:
    """The steps and statements of `source`, or ExprError for anything outside the language."""
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
    return steps, checker.statements


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
                raise ExprError(
                    f"{kind} not allowed: the language has numbers and tensors only", line, col - 1
                )
            raise ExprError(
                "quoted text is not allowed: the language has numbers and tensors only", line, col
            )
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
    ast.Module,
    ast.Assign,
    ast.Expr,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.keyword,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.MatMult,
    ast.USub,
    ast.UAdd,
)
_BINOPS = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.MatMult: "matmul",
}
_OP_SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Not: "not",
}


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
                raise ExprError(
                    f"the program is too large (more than {MAX_NODES:,} syntax nodes): "
                    "split it into smaller programs, or use tensors instead of many scalar statements"
                )
            if depth > MAX_TREE_DEPTH:
                self.fail(
                    where,
                    f"the expression is nested more than {MAX_TREE_DEPTH} levels deep (each operator of a "
                    "long chain such as a + b + c + ... counts): split it over several statements",
                )
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
        is_param = (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "param"
        )
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
            self.fail(
                node,
                f"`{name}` is already assigned on line {self.defined[name]}; "
                "use a new name so every value keeps its own node",
            )

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
                self.fail(
                    func.value,
                    f"write `{func.attr}(...)` without `{owner}.`: functions are called "
                    "by their plain name here",
                )
            if func.attr not in METHODS:
                if func.attr in ATTRIBUTES:
                    self.fail(func, f"`.{func.attr}` is not a method: write `x.{func.attr}` without brackets")
                hint = _suggest(func.attr, METHODS) if not func.attr.startswith("_") else ""
                methods = " ".join(f".{m}()" for m in METHODS)
                self.fail(
                    func, f"`.{func.attr}()` is not an allowed method{hint} (allowed: {methods} and .T)"
                )
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
            self.fail(
                node, f"{spec.name}{tuple(sizes)} would hold {n:,} elements; the limit is {MAX_ELEMENTS:,}"
            )

    def _arity(self, node: ast.Call, spec: ops.OpSpec, receiver: int) -> None:
        low, high = spec.arity
        given = len(node.args) + len(node.keywords) + receiver
        if given < low or (high is not None and len(node.args) + receiver > high):
            self.fail(
                node,
                f"`{spec.name}` takes {_count_text(low - receiver, high, receiver)}, "
                f"got {given - receiver}: {spec.signature()}",
            )


def _count_text(low: int, high: int | None, receiver: int) -> str:
    if high is None:
        return f"at least {low} argument{'s' * (low != 1)}"
    high -= receiver
    if low == high:
        return f"{low} argument{'s' * (low != 1)}"
    return f"{low} to {high} arguments"


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
