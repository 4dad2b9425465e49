"""Parse-time half of the language: cheap text checks, the allow-list walk of the syntax tree, safe folding.

`check(source)` returns the syntax tree of a program or raises `ExprError`, in source order: the first
offending line is the one reported. Nothing here runs torch code. `explorer.core.lang.program` is the
public face (parse, Program); `explorer.core.lang.interp` runs the tree.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass

from explorer.core.lang.ops import MAX_ELEMENTS, OPS

# Limits that make hostile input cheap to reject before any work is done.
MAX_SOURCE_CHARS = 40_000
MAX_BRACKET_DEPTH = 64  # ( [ { nesting, checked on the raw text before ast.parse
MAX_TREE_DEPTH = 100  # syntax-tree depth (catches `- - - - x` and long chains without brackets)
MAX_NODES = 20_000
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


# ------------------------------------------------------------------------------------------ check


def check(source: str) -> tuple[ast.Module, list[Statement]]:
    """The syntax tree and top-level assignments of `source`, or ExprError for anything outside the
    language."""
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
    checker.check(tree)
    return tree, checker.statements


def _prescan(source: str) -> None:
    """Reject what is cheap to see on the raw text: size, NUL bytes, bytes that are not text, deep brackets.

    Brackets inside quoted text count too: the scan is deliberately crude (it bounds the parser's work,
    it does not parse)."""
    depth = 0
    line, col = 1, 0
    in_comment = False
    # the scan stops at the size limit, so the cost is bounded however long the text is; it runs before
    # the size check so that 10,000 nested brackets are reported as what they are
    for ch in source[: MAX_SOURCE_CHARS + 1]:
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
            continue
        col += 1
        if "\ud800" <= ch <= "\udfff":
            raise ExprError("the program contains bytes that are not UTF-8 text: save it as UTF-8", line, col)
        if in_comment:
            continue
        if ch == "#":
            in_comment = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                raise ExprError(f"brackets are nested more than {MAX_BRACKET_DEPTH} deep", line, col)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "\x00":
            raise ExprError("the program contains a NUL character", line, col)
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprError(f"the program is {len(source):,} characters long; the limit is {MAX_SOURCE_CHARS:,}")


def _syntax_message(exc: SyntaxError) -> str:
    msg = (exc.msg or "invalid syntax").strip()
    if msg.startswith("invalid syntax"):
        return "invalid syntax: check for a missing operator, bracket, comma or colon"
    return f"Python cannot read this line: {msg}"


_FORBIDDEN: dict[type, str] = {
    ast.Lambda: "lambdas are not supported: define a function with `def`",
    ast.SetComp: "set comprehensions are not supported: use a list",
    ast.Set: "sets are not supported: use a list",
    ast.NamedExpr: "`:=` is not supported: assign on a line of its own",
    ast.Await: "`await` is not supported",
    ast.Yield: "`yield` is not supported: return a list",
    ast.YieldFrom: "`yield` is not supported: return a list",
    ast.AsyncFunctionDef: "`async def` is not supported",
    ast.AsyncFor: "`async for` is not supported",
    ast.AsyncWith: "`async with` is not supported",
    ast.Try: "`try` is not supported: a program that fails shows its error on its line",
    ast.Raise: "`raise` is not supported: use `assert condition, \"message\"`",
    ast.Delete: "`del` is not supported: assign a new value instead",
    ast.Global: "`global` is not supported: return the value from the function",
    ast.Nonlocal: "`nonlocal` is not supported: return the value from the function",
}
if hasattr(ast, "TryStar"):
    _FORBIDDEN[ast.TryStar] = "`try` is not supported"
if hasattr(ast, "Match"):
    _FORBIDDEN[ast.Match] = "`match` is not supported: use if/elif/else"

_ALLOWED = (
    # statements
    ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.For, ast.While, ast.Break,
    ast.Continue, ast.Pass, ast.FunctionDef, ast.Return, ast.ClassDef, ast.With, ast.withitem, ast.Import,
    ast.ImportFrom, ast.alias, ast.Assert, ast.arguments, ast.arg,
    # expressions
    ast.Name, ast.Load, ast.Store, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call,
    ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Dict, ast.keyword, ast.Starred,
    ast.IfExp, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.comprehension, ast.JoinedStr,
    ast.FormattedValue,
    # operators
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult, ast.BitAnd, ast.BitOr,
    ast.BitXor, ast.LShift, ast.RShift, ast.USub, ast.UAdd, ast.Not, ast.Invert, ast.And, ast.Or, ast.Eq,
    ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)  # fmt: skip

_BINOPS = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.MatMult: "matmul",
}

# Python builtins that reach the interpreter itself, files or the network; refused by name.
REFUSED_BUILTINS = {
    "eval": "a program never runs text as code",
    "exec": "a program never runs text as code",
    "compile": "a program never compiles code",
    "open": "a program never reads or writes files",
    "__import__": "import what you need with `import torch` (torch, math, random and micrograd)",
    "getattr": "write the attribute itself (`x.grad`), so the allow-list can check it",
    "setattr": "assign the attribute itself (`x.grad = None`)",
    "delattr": "attributes cannot be deleted",
    "globals": "a program cannot reach the interpreter's variables",
    "locals": "a program cannot reach the interpreter's variables",
    "vars": "a program cannot reach the interpreter's variables",
    "dir": "a program cannot list an object's insides",
    "input": "a program cannot ask for input",
    "breakpoint": "a program cannot start a debugger",
    "help": "a program cannot open help",
    "memoryview": "a program cannot reach raw memory",
    "bytearray": "a program works with numbers, text and tensors",
    "bytes": "a program works with numbers, text and tensors",
    "object": "a program's classes subclass nn.Module",
    "classmethod": "decorators are not supported",
    "staticmethod": "decorators are not supported",
    "property": "decorators are not supported",
    "id": "a program cannot see memory addresses",
    "iter": "loop with `for`",
    "next": "loop with `for`",
    "exit": "a program ends at its last line",
    "quit": "a program ends at its last line",
}

# `torch.<name>` refused at parse time (the same names are missing from the namespace at run time)
TORCH_REFUSED = ("load", "save", "hub", "jit", "compile", "ops", "classes", "utils", "distributed",
                 "multiprocessing", "cuda", "backends", "from_numpy", "from_file", "frombuffer")

ALLOWED_IMPORTS = ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.autograd", "torch.nn.init",
                   "math", "random", "micrograd", "micrograd.engine", "micrograd.nn")


def position(lines: list[str], node) -> tuple[int, int]:
    """1-based line and character column (ast counts UTF-8 bytes). A method call or attribute is located at
    its dot, so that in `a.T.sum(1)` an error of `sum` points at `.sum`, not at `a`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node = node.func
    if isinstance(node, ast.Attribute) and getattr(node.value, "end_lineno", None) is not None:
        line, offset = node.value.end_lineno, node.value.end_col_offset or 0
    else:
        line, offset = getattr(node, "lineno", 1) or 1, getattr(node, "col_offset", 0) or 0
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return line, len(text.encode("utf-8")[:offset].decode("utf-8", errors="replace")) + 1


def suggest(word: str, candidates) -> str:
    """`; did you mean `x`?` for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class _Checker:
    """Walks the syntax tree once, in source order: node types, sizes, names and attributes."""

    def __init__(self, source: str):
        self.lines = source.splitlines()
        self.source = source
        self.statements: list[Statement] = []

    def pos(self, node) -> tuple[int, int]:
        """1-based line and character column of a node (of the `.` for attributes)."""
        return position(self.lines, node)

    def fail(self, node, message: str):
        raise ExprError(message, *self.pos(node))

    def check(self, tree: ast.Module) -> None:
        self._walk(tree)
        for stmt in tree.body:
            targets = []
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
                targets = [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    line, col = self.pos(stmt)
                    self.statements.append(Statement(target.id, line, col, self._text(stmt) or target.id))
        if not tree.body:
            raise ExprError("the program is empty: write some lines such as `y = torch.sigmoid(torch.tensor(2.0))`")

    def _text(self, stmt: ast.stmt) -> str:
        """The statement's source text (ast.get_source_segment splits the whole source every call)."""
        first, last = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
        lines = self.lines[first:last + 1]
        if not lines:
            return ""
        end = stmt.end_col_offset or 0
        lines[-1] = lines[-1].encode("utf-8")[:end].decode("utf-8", errors="replace")
        lines[0] = lines[0].encode("utf-8")[stmt.col_offset:].decode("utf-8", errors="replace")
        return "\n".join(lines)

    def _walk(self, tree: ast.AST) -> None:
        count = 0
        stack = [(tree, 0, tree, None)]  # (node, depth, nearest node with a position, parent)
        while stack:
            node, depth, where, parent = stack.pop()
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
            if type(node) in _FORBIDDEN:
                self.fail(where, _FORBIDDEN[type(node)])
            if not isinstance(node, _ALLOWED):
                self.fail(where, f"{type(node).__name__} is not supported here")
            self._node(node, parent)
            # reversed, so that the walk goes left to right and reports the first problem in the text
            stack.extend((child, depth + 1, where, node) for child in reversed(list(ast.iter_child_nodes(node))))

    def _node(self, node, parent) -> None:
        if isinstance(node, ast.Name):
            name = node.id
            if name.startswith("__") and name != "__name__":
                self.fail(node, f"`{name}`: names starting with `__` are not allowed")
            if name in REFUSED_BUILTINS and isinstance(node.ctx, ast.Load):
                self.fail(node, f"`{name}` is not allowed: {REFUSED_BUILTINS[name]}")
        elif isinstance(node, ast.Attribute):
            chain = [node]
            while isinstance(chain[-1].value, ast.Attribute):
                chain.append(chain[-1].value)
            for inner in reversed(chain[1:]):  # the leftmost offending attribute of a chain goes first
                self._node(inner, None)
            attr = node.attr
            is_super_init = (attr == "__init__" and isinstance(node.value, ast.Call)
                             and isinstance(node.value.func, ast.Name) and node.value.func.id == "super")
            if attr.startswith("_") and not is_super_init:
                self.fail(node, f"`.{attr}`: attributes starting with `_` are not allowed")
            if isinstance(node.value, ast.Name) and node.value.id == "torch" and attr in TORCH_REFUSED:
                self.fail(node, f"`torch.{attr}` is not allowed: programs are interpreted, and never reach "
                                "files, the network or torch's internals")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bytes):
                self.fail(node, "bytes are not supported: use text, numbers and tensors")
            if isinstance(node.value, complex):
                self.fail(node, "complex numbers are not supported")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                self.fail(node, "relative imports are not supported")
            for name in names:
                if name not in ALLOWED_IMPORTS:
                    why = " (numpy is not available: use torch)" if name.split(".")[0] == "numpy" else ""
                    self.fail(node, f"`import {name}` is not allowed{why}: a program can import torch, "
                                    "torch.nn, torch.nn.functional, torch.optim, torch.autograd, math, random "
                                    "and micrograd")
        elif isinstance(node, ast.FunctionDef):
            if node.decorator_list:
                self.fail(node.decorator_list[0], "decorators are not supported")
            if node.name.startswith("__") or (node.name.startswith("_") and not isinstance(parent, ast.Module)):
                if not (node.name == "__init__" and isinstance(parent, ast.ClassDef)):
                    self.fail(node, f"`{node.name}`: a method may not start with `_` (only `__init__`)")
        elif isinstance(node, ast.ClassDef):
            if node.decorator_list:
                self.fail(node.decorator_list[0], "decorators are not supported")
            if len(node.bases) != 1 or node.keywords:
                self.fail(node, f"class `{node.name}` needs exactly one base class, nn.Module: "
                                f"`class {node.name}(nn.Module):`")
            for item in node.body:
                ok = isinstance(item, ast.FunctionDef | ast.Pass) or (
                    isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)) or (
                    isinstance(item, ast.Assign) and all(isinstance(t, ast.Name) for t in item.targets)) or (
                    isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name))
                if not ok:
                    self.fail(item, "a class body holds methods (def) and simple assignments")
        elif isinstance(node, ast.BinOp):
            self._constant(node)  # refuses `9**9**9**9` here, before anything runs

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
