"""The interpreter: runs a checked program's syntax tree statement by statement, under an allow-list.

Nothing is passed to eval, exec or compile. Values are real Python numbers, strings, lists, torch tensors,
nn modules and optimizers, so a program builds exactly the graph torch builds for the same code. Every
attribute, call and import goes through this module's checks: names from `torchapi`, the tensor's allowed
methods and attributes, nn.Module instances' parameters, submodules and listed methods, micrograd's
`PUBLIC` names, and a few methods of str, list and dict. Limits bound statements, loop iterations, call
depth, elements per tensor and in all, matrix-product work, printed output and wall time; each is an
ExprError naming the limit and the line.

`Hooks` is what a run reports to (the line it is on, names given to values, backward passes, optimizer
steps, printed text). The plain run uses it as is; the tracer (`explorer.core.autograd.trace`) records
through a subclass.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import random as random_module
import re
import string
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn

from explorer.core.lang import micrograd, torchapi
from explorer.core.lang.syntax import MAX_INT_BITS, ExprError, position, suggest

# -------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """How much one run may do; each is an ExprError naming it when crossed."""

    statements: int = 200_000  # statements executed (loops count every pass)
    loop_iterations: int = 100_000  # passes of all loops and comprehensions together
    call_depth: int = 40  # nested calls of the program's own functions
    elements: int = 10**6  # elements of one tensor
    total_elements: int = 5 * 10**7  # elements of all tensors a run makes
    products: int = 5 * 10**9  # multiply-adds of all matrix products
    seconds: float = 30.0  # wall time of one run
    output_chars: int = 100_000  # printed text
    collection: int = 10**6  # items of one list, tuple, dict or characters of one string


LIMITS = Limits()


# --------------------------------------------------------------------------------------------- values


class Namespace:
    """A module as a program sees it: `torch`, `nn`, `F`, `math`, ... with only its allowed members."""

    def __init__(
        self,
        name: str,
        lookup: Callable[[str], object],
        refused: dict | None = None,
        members: Iterable[str] = (),
    ):
        self.name = name
        self.lookup = lookup
        self.refused = refused or {}
        self.members = frozenset(members)

    def __repr__(self) -> str:
        return f"<module '{self.name}'>"


class Builtin:
    """A callable the program may call: a torch function, a bound method, or one of ours."""

    __slots__ = ("name", "fn", "kind", "owner")

    def __init__(self, name: str, fn, kind: str, owner=None):
        self.name, self.fn, self.kind, self.owner = name, fn, kind, owner

    def __repr__(self) -> str:
        return f"<built-in {self.name}>"


@dataclass
class UserFunction:
    """A `def` of the program: its node and the scope it was defined in."""

    node: ast.FunctionDef
    scope: Scope
    owner: type | None = None  # the class of a method

    @property
    def name(self) -> str:
        return self.node.name

    def __repr__(self) -> str:
        return f"<function {self.node.name}>"


@dataclass
class BoundMethod:
    """A program's method bound to its instance."""

    function: UserFunction
    instance: object

    def __repr__(self) -> str:
        return f"<bound method {self.function.name}>"


class SuperProxy:
    """`super()` inside a method of a program's class."""

    def __init__(self, cls: type, instance: object):
        self.cls, self.instance = cls, instance


class Scope:
    """Variables of the module or of one call; reads fall back to the enclosing scope."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Scope | None = None):
        self.vars: dict[str, object] = {}
        self.parent = parent

    def lookup(self, name: str):
        scope = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        raise KeyError(name)


class _Flow(Exception):  # noqa: N818 -- not an error: break, continue, return
    pass


class _Break(_Flow):
    pass


class _Continue(_Flow):
    pass


class _Return(_Flow):
    def __init__(self, value):
        super().__init__()
        self.value = value


@dataclass
class Pass:
    """One backward pass the program ran (`backward()` or `torch.autograd.grad`)."""

    kind: str  # "backward" | "grad"
    tensor: torch.Tensor  # what it differentiated
    line: int
    gradient: bool = False  # an explicit `gradient=` / `grad_outputs=` was given
    gradient_value: torch.Tensor | None = None  # that gradient


@dataclass
class Event:
    """Something the program did besides computing: an optimizer step, zero_grad, a print."""

    kind: str  # "step" | "zero_grad" | "print" | "show" | "warning"
    line: int
    text: str


class Hooks:
    """What a run reports to. The plain run does the work itself; the tracer subclasses this."""

    def at_line(self, line: int) -> None:
        """The run is now on `line` (ops it records belong to it)."""

    def bind(self, name: str, value) -> None:
        """`name` now holds `value` (an assignment, a label)."""

    def paused(self):
        """A context in which torch calls are not part of the program's graph (initialisers, checks)."""
        from explorer.core.autograd.trace import unrecorded

        return unrecorded()

    def backward(self, run: Callable[[], object], root: torch.Tensor, kind: str, line: int):
        """Run one backward pass (`run()` does it) and return its result."""
        return run()

    def event(self, event: Event) -> None:
        """An optimizer step, zero_grad, print or warning happened."""


# -------------------------------------------------------------------------------------------- helpers

_BINOP_FUNCS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.MatMult: operator.matmul, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}  # fmt: skip
_INPLACE_FUNCS = {
    ast.Add: operator.iadd, ast.Sub: operator.isub, ast.Mult: operator.imul, ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv, ast.Mod: operator.imod, ast.Pow: operator.ipow,
    ast.MatMult: operator.imatmul, ast.BitAnd: operator.iand, ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor, ast.LShift: operator.ilshift, ast.RShift: operator.irshift,
}  # fmt: skip
_SYMBOLS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
    ast.RShift: ">>",
}  # fmt: skip
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip

_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[bcdeEfFgGnosxX%]?$")

# methods of plain Python values a program may call
_PY_METHODS = {
    list: frozenset("append extend pop insert index count reverse copy clear remove".split()),
    tuple: frozenset("index count".split()),
    dict: frozenset("keys values items get copy update pop setdefault".split()),
    str: frozenset(
        """upper lower strip lstrip rstrip split join replace startswith endswith title
                    capitalize count find index isdigit isalpha format splitlines""".split()
    ),
    torch.Size: frozenset("numel index count".split()),
}

_NUMBER = (int, float)


def _is_number(v) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool) or isinstance(v, bool)


def _kind(v) -> str:
    if isinstance(v, torch.Tensor):
        return "tensor"
    if isinstance(v, Namespace):
        return f"module `{v.name}`"
    if isinstance(v, nn.Module):
        return type(v).__name__
    return type(v).__name__


# ---------------------------------------------------------------------------------------- interpreter


class Interpreter:
    """Runs one program once. `overrides` replace the values of the leaves that require grad (by the
    order the program creates them); `dtype` (float64 for finite differences) converts every floating
    tensor the program creates."""

    def __init__(
        self,
        source: str,
        tree: ast.Module,
        hooks: Hooks | None = None,
        overrides: dict[int, object] | None = None,
        dtype: torch.dtype | None = None,
        limits: Limits = LIMITS,
        cancelled: Callable[[], bool] | None = None,
    ):
        self.source = source
        self.tree = tree
        self.lines = source.splitlines()
        self.hooks = hooks or Hooks()
        self.overrides = dict(overrides or {})
        self.dtype = dtype
        self.limits = limits
        self.cancelled = cancelled
        self.globals = Scope()
        self.builtins = _python_builtins(self)
        self.leaves: list[torch.Tensor] = []  # every leaf that requires grad, in creation order
        self.initial: dict[int, torch.Tensor] = {}  # each leaf's value when it was made
        self.passes: list[Pass] = []
        self.events: list[Event] = []
        self.output_parts: list[str] = []
        self.output_chars = 0
        self.shown: torch.Tensor | None = None  # draw_dot's root
        self.statements = 0
        self.iterations = 0
        self.depth = 0
        self.total_elements = 0
        self.products = 0
        self.line = 1
        self.deadline = 0.0
        self.random = random_module.Random(0)
        self.user_classes: set[type] = set()
        self.last_assigned: str | None = None  # the last top-level name assigned a tensor or Value
        self.last_number: str | None = None  # the last top-level name assigned a plain number
        self.owners: list[type | None] = []  # the class of each method call in progress (for super())
        from explorer.core.lang import legacy

        self.lists_are_tensors = legacy.is_formula(tree)  # the first language's list literals (cached)

    # -- running -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Run the whole program (torch's random numbers start from seed 0 and are restored after)."""
        self.deadline = time.monotonic() + self.limits.seconds
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.default_generator.manual_seed(0)  # the CPU stream only: torch.manual_seed costs ms
            stack.enter_context(micrograd.activated(self, self.random))
            stack.enter_context(torch.enable_grad())
            stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            pre = nn.modules.module.register_module_forward_pre_hook(self._module_pre_hook)
            stack.callback(pre.remove)
            try:
                self.exec_block(self.tree.body, self.globals)
            except _Return:
                raise ExprError("`return` outside a function", self.line) from None
            except _Flow:
                raise ExprError("`break` or `continue` outside a loop", self.line) from None
            except RecursionError:
                raise ExprError("the program nests calls too deeply", self.line) from None
            except MemoryError:
                raise ExprError("the program ran out of memory", self.line) from None

    def fail(self, node, message: str):
        """Raise an ExprError at `node`."""
        line, col = position(self.lines, node) if node is not None else (self.line, 1)
        raise ExprError(message, line, col)

    def _tick(self, node) -> None:
        self.statements += 1
        if self.statements > self.limits.statements:
            self.fail(
                node,
                f"the program ran more than {self.limits.statements:,} statements (a loop that never ends?)",
            )
        if self.statements % 64 == 0:
            self._check_time(node)

    def _check_time(self, node) -> None:
        if time.monotonic() > self.deadline:
            self.fail(node, f"the program ran longer than {self.limits.seconds:g} s and was stopped")
        if self.cancelled is not None and self.cancelled():
            self.fail(node, "the run was cancelled")

    def _loop_pass(self, node) -> None:
        self.iterations += 1
        if self.iterations > self.limits.loop_iterations:
            self.fail(node, f"the loops ran more than {self.limits.loop_iterations:,} times in all")
        if self.iterations % 64 == 0:
            self._check_time(node)

    def _module_pre_hook(self, module, args):
        """Every module call: check time and the work of linear layers (Sequential calls them directly)."""
        if isinstance(module, nn.Linear) and args and isinstance(args[0], torch.Tensor):
            x = args[0]
            rows = x.numel() // max(x.shape[-1], 1) if x.dim() else 1
            self._count_products(rows * module.in_features * module.out_features, None)
        if time.monotonic() > self.deadline:
            raise ExprError(
                f"the program ran longer than {self.limits.seconds:g} s and was stopped", self.line
            )

    # -- statements ----------------------------------------------------------------------------------

    def exec_block(self, body: list[ast.stmt], scope: Scope) -> None:
        """Run statements in order."""
        for stmt in body:
            self.exec_stmt(stmt, scope)

    def exec_stmt(self, stmt: ast.stmt, scope: Scope) -> None:
        """Run one statement."""
        self._tick(stmt)
        self.line = stmt.lineno
        self.hooks.at_line(stmt.lineno)
        method = _STMT.get(type(stmt))
        if method is None:
            self.fail(stmt, f"{type(stmt).__name__} statements are not allowed")
        try:
            method(self, stmt, scope)
        except (ExprError, _Flow, KeyboardInterrupt, SystemExit, RecursionError):
            raise
        except MemoryError:
            self.fail(stmt, "the program ran out of memory")
        except Exception as exc:  # noqa: BLE001 -- an error of the statement itself (`w -= ...` on a leaf)
            self.fail(stmt, explain_error(exc))

    def stmt_Expr(self, stmt: ast.Expr, scope: Scope) -> None:  # noqa: N802
        value = self.evaluate(stmt.value, scope)
        # a bare expression line of the module shows its value, as a notebook does (docstrings and calls
        # made for what they do, such as print(...) or x.backward(), show nothing)
        shown = not isinstance(stmt.value, ast.Constant) and (
            not isinstance(stmt.value, ast.Call) or _is_display_worthy(stmt.value)
        )
        if scope is self.globals and value is not None and shown:
            self.write(_display(value) + "\n", stmt)

    def stmt_Pass(self, stmt, scope) -> None:  # noqa: N802
        pass

    def stmt_Break(self, stmt, scope) -> None:  # noqa: N802
        raise _Break()

    def stmt_Continue(self, stmt, scope) -> None:  # noqa: N802
        raise _Continue()

    def stmt_Return(self, stmt: ast.Return, scope: Scope) -> None:  # noqa: N802
        raise _Return(None if stmt.value is None else self.evaluate(stmt.value, scope))

    def stmt_Assign(self, stmt: ast.Assign, scope: Scope) -> None:  # noqa: N802
        value = self.evaluate(stmt.value, scope)
        for target in stmt.targets:
            self.assign(target, value, scope)

    def stmt_AnnAssign(self, stmt: ast.AnnAssign, scope: Scope) -> None:  # noqa: N802
        if stmt.value is not None:
            self.assign(stmt.target, self.evaluate(stmt.value, scope), scope)

    def stmt_AugAssign(self, stmt: ast.AugAssign, scope: Scope) -> None:  # noqa: N802
        target = stmt.target
        if isinstance(target, ast.Name):
            old = self.load_name(target, scope)
        elif isinstance(target, ast.Attribute):
            owner = self.evaluate(target.value, scope)
            old = self.get_attr(owner, target.attr, target)
        elif isinstance(target, ast.Subscript):
            owner = self.evaluate(target.value, scope)
            index = self.evaluate(target.slice, scope)
            old = self.get_item(owner, index, target)
        else:
            self.fail(target, "this target cannot take `+=`")
        right = self.evaluate(stmt.value, scope)
        new = self.binop(stmt.op, old, right, stmt, inplace=True)
        if isinstance(target, ast.Name):
            self.assign(target, new, scope)
        elif isinstance(target, ast.Attribute):
            self.set_attr(owner, target.attr, new, target)
        else:
            self.set_item(owner, index, new, target)

    def stmt_If(self, stmt: ast.If, scope: Scope) -> None:  # noqa: N802
        if self.truth(self.evaluate(stmt.test, scope), stmt.test):
            self.exec_block(stmt.body, scope)
        else:
            self.exec_block(stmt.orelse, scope)

    def stmt_While(self, stmt: ast.While, scope: Scope) -> None:  # noqa: N802
        while self.truth(self.evaluate(stmt.test, scope), stmt.test):
            self._loop_pass(stmt)
            if not self._loop_body(stmt, scope):
                return
        self.exec_block(stmt.orelse, scope)

    def stmt_For(self, stmt: ast.For, scope: Scope) -> None:  # noqa: N802
        iterable = self.evaluate(stmt.iter, scope)
        for item in self.iterate(iterable, stmt.iter):
            self._loop_pass(stmt)
            self.assign(stmt.target, item, scope)
            if not self._loop_body(stmt, scope):
                return
        self.exec_block(stmt.orelse, scope)

    def _loop_body(self, stmt: ast.For | ast.While, scope: Scope) -> bool:
        """Run a loop's body once; False when it breaks out of the loop."""
        try:
            self.exec_block(stmt.body, scope)
        except _Break:
            return False
        except _Continue:
            pass
        return True

    def stmt_With(self, stmt: ast.With, scope: Scope) -> None:  # noqa: N802
        with contextlib.ExitStack() as stack:
            for item in stmt.items:
                manager = self.evaluate(item.context_expr, scope)
                if not _is_grad_mode(manager):
                    self.fail(
                        item.context_expr,
                        "`with` works with torch.no_grad(), torch.enable_grad(), "
                        "torch.set_grad_enabled(...) and torch.inference_mode()",
                    )
                value = stack.enter_context(manager)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, value, scope)
            self.exec_block(stmt.body, scope)

    def stmt_Assert(self, stmt: ast.Assert, scope: Scope) -> None:  # noqa: N802
        if not self.truth(self.evaluate(stmt.test, scope), stmt.test):
            detail = ""
            if stmt.msg is not None:
                detail = ": " + str(self.evaluate(stmt.msg, scope))[:200]
            self.fail(stmt, f"assertion failed{detail}")

    def stmt_FunctionDef(self, stmt: ast.FunctionDef, scope: Scope) -> None:  # noqa: N802
        scope.vars[stmt.name] = UserFunction(stmt, scope)

    def stmt_ClassDef(self, stmt: ast.ClassDef, scope: Scope) -> None:  # noqa: N802
        bases = [self.evaluate(b, scope) for b in stmt.bases]
        base = bases[0] if len(bases) == 1 else None
        if not (
            isinstance(base, type)
            and issubclass(base, nn.Module)
            and (base is nn.Module or base in self.user_classes or torchapi.is_allowed_module_class(base))
        ):
            self.fail(
                stmt,
                f"class `{stmt.name}`: a program's classes must subclass nn.Module "
                "(e.g. `class Net(nn.Module):`)",
            )
        namespace: dict[str, object] = {}
        methods: dict[str, UserFunction] = {}
        attributes: dict[str, object] = {}
        class_scope = Scope(scope)
        for item in stmt.body:
            if isinstance(item, ast.FunctionDef):
                methods[item.name] = UserFunction(item, scope)
            elif isinstance(item, ast.Assign | ast.AnnAssign):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                value = self.evaluate(item.value, class_scope) if item.value is not None else None
                for t in targets:
                    attributes[t.id] = value
            # docstrings and `pass` need nothing
        interp = self

        def make(function: UserFunction):
            def method(this, *args, **kwargs):
                return interp.call_user(function, [this, *args], kwargs, function.node)

            method.__name__ = function.name
            return method

        for name, function in methods.items():
            namespace[name] = make(function)
        namespace.update(attributes)
        namespace["__module__"] = "program"
        cls = type(stmt.name, (base,), namespace)
        for function in methods.values():
            function.owner = cls
        cls.program_methods = dict(methods)
        self.user_classes.add(cls)
        scope.vars[stmt.name] = cls

    def stmt_Import(self, stmt: ast.Import, scope: Scope) -> None:  # noqa: N802
        for alias in stmt.names:
            module = _module(self, alias.name, stmt)
            if alias.asname:
                scope.vars[alias.asname] = module
            else:
                top = alias.name.split(".")[0]
                scope.vars[top] = _module(self, top, stmt)

    def stmt_ImportFrom(self, stmt: ast.ImportFrom, scope: Scope) -> None:  # noqa: N802
        module = _module(self, stmt.module or "", stmt)
        for alias in stmt.names:
            if alias.name == "*":
                self.fail(stmt, f"`from {stmt.module} import *` is not supported: import the names you use")
            full = f"{stmt.module}.{alias.name}"
            if full in _MODULES:
                value = _module(self, full, stmt)
            else:
                value = self.get_attr(module, alias.name, stmt)
            scope.vars[alias.asname or alias.name] = value

    # -- assignment --------------------------------------------------------------------------------

    def assign(self, target: ast.expr, value, scope: Scope) -> None:
        """Bind `value` to a name, unpack it into a tuple, or set an attribute or item."""
        if isinstance(target, ast.Name):
            previous = scope.vars.get(target.id, _MISSING)
            scope.vars[target.id] = value
            if previous is not value:
                self._name_value(target.id, value)
                if scope is self.globals and isinstance(value, torch.Tensor | micrograd.Value):
                    self.last_assigned = target.id
                elif scope is self.globals and isinstance(value, int | float) and not isinstance(value, bool):
                    self.last_number = target.id
        elif isinstance(target, ast.Tuple | ast.List):
            items = self.bounded_list(value, target)
            starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
            if starred:
                s = starred[0]
                after = len(target.elts) - s - 1
                if len(items) < len(target.elts) - 1:
                    self.fail(
                        target,
                        f"not enough values to unpack (expected at least {len(target.elts) - 1}, "
                        f"got {len(items)})",
                    )
                head, middle, tail = items[:s], items[s : len(items) - after], items[len(items) - after :]
                for e, v in zip(target.elts[:s], head, strict=True):
                    self.assign(e, v, scope)
                self.assign(target.elts[s].value, list(middle), scope)
                for e, v in zip(target.elts[s + 1 :], tail, strict=True):
                    self.assign(e, v, scope)
                return
            if len(items) != len(target.elts):
                self.fail(target, f"cannot unpack {len(items)} values into {len(target.elts)} names")
            for e, v in zip(target.elts, items, strict=True):
                self.assign(e, v, scope)
        elif isinstance(target, ast.Attribute):
            self.set_attr(self.evaluate(target.value, scope), target.attr, value, target)
        elif isinstance(target, ast.Subscript):
            owner = self.evaluate(target.value, scope)
            self.set_item(owner, self.evaluate(target.slice, scope), value, target)
        else:
            self.fail(target, "this cannot be assigned to")

    def _name_value(self, name: str, value) -> None:
        if isinstance(value, micrograd.Value):
            value = value.t
        if isinstance(value, torch.Tensor):
            self.hooks.bind(name, value)

    def name_value(self, name: str, tensor: torch.Tensor) -> None:
        """micrograd's `label=`: the value's node is called `name`."""
        self.hooks.bind(str(name)[:64], tensor)

    # -- expressions ---------------------------------------------------------------------------------

    def evaluate(self, node: ast.expr, scope: Scope):
        """The value of an expression; any error becomes an ExprError at the innermost node."""
        method = _EXPR.get(type(node))
        if method is None:
            self.fail(node, f"{type(node).__name__} is not allowed here")
        try:
            return method(self, node, scope)
        except (ExprError, _Flow, KeyboardInterrupt, SystemExit):
            raise
        except RecursionError:
            raise
        except MemoryError:
            self.fail(node, "the program ran out of memory")
        except Exception as exc:  # noqa: BLE001 -- torch and Python errors become the user's line
            self.fail(node, explain_error(exc))

    def expr_Constant(self, node: ast.Constant, scope):  # noqa: N802
        value = node.value
        if isinstance(value, bytes | complex):
            self.fail(node, f"{type(value).__name__} constants are not supported")
        return value

    def expr_Name(self, node: ast.Name, scope):  # noqa: N802
        return self.load_name(node, scope)

    def load_name(self, node: ast.Name, scope: Scope):
        """A variable, else a builtin, else a helpful NameError."""
        try:
            return scope.lookup(node.id)
        except KeyError:
            pass
        if node.id in self.builtins:
            return self.builtins[node.id]
        if node.id in _IMPORT_HINTS:
            self.fail(node, f"`{node.id}` is not defined: {_IMPORT_HINTS[node.id]}")
        names = list(self.globals.vars) + list(self.builtins)
        self.fail(node, f"`{node.id}` is not defined{suggest(node.id, names)}")

    def expr_List(self, node: ast.List, scope):  # noqa: N802
        if self.lists_are_tensors:
            from explorer.core.lang import legacy

            return legacy.literal(self, node, scope)
        return self._sequence(node, scope)

    def expr_Tuple(self, node: ast.Tuple, scope):  # noqa: N802
        return tuple(self._sequence(node, scope))

    def _sequence(self, node, scope) -> list:
        out = []
        for e in node.elts:
            if isinstance(e, ast.Starred):
                out.extend(self.bounded_list(self.evaluate(e.value, scope), e))
            else:
                out.append(self.evaluate(e, scope))
        self.check_size(len(out), node)
        return out

    def expr_Dict(self, node: ast.Dict, scope):  # noqa: N802
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                out.update(self.evaluate(v, scope))
            else:
                out[self.evaluate(k, scope)] = self.evaluate(v, scope)
        return out

    def expr_Slice(self, node: ast.Slice, scope):  # noqa: N802
        def part(n):
            return None if n is None else self.evaluate(n, scope)

        return slice(part(node.lower), part(node.upper), part(node.step))

    def expr_JoinedStr(self, node: ast.JoinedStr, scope):  # noqa: N802
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(self.expr_FormattedValue(value, scope))
        text = "".join(parts)
        self.check_size(len(text), node)
        return text

    def expr_FormattedValue(self, node: ast.FormattedValue, scope):  # noqa: N802
        value = self.evaluate(node.value, scope)
        if node.conversion == ord("r"):
            value = repr(value)
        elif node.conversion == ord("s"):
            value = str(value)
        spec = "" if node.format_spec is None else self.evaluate(node.format_spec, scope)
        return self.format_value(value, spec, node)

    def format_value(self, value, spec: str, node) -> str:
        """format(value, spec) with the widths and precisions a program may ask for kept small."""
        found = _FORMAT_SPEC.match(spec)
        if spec and (found is None or int(found.group(1) or 0) > 200 or int(found.group(2) or 0) > 50):
            self.fail(
                node, f"the format `{spec[:20]}` is not supported (widths up to 200, precision up to 50)"
            )
        if isinstance(value, micrograd.Value):
            value = value.data
        return format(value, spec)

    def expr_BinOp(self, node: ast.BinOp, scope):  # noqa: N802
        return self.binop(node.op, self.evaluate(node.left, scope), self.evaluate(node.right, scope), node)

    def binop(self, op: ast.operator, left, right, node, inplace: bool = False):
        """`left op right` as Python does it, after size checks."""
        kind = type(op)
        symbol = _SYMBOLS[kind]
        if _is_number(left) and _is_number(right):
            return self._number_op(kind, left, right, node)
        self._check_operands(kind, left, right, node, symbol)
        funcs = _INPLACE_FUNCS if inplace else _BINOP_FUNCS
        result = funcs[kind](left, right)
        if isinstance(result, str | list | tuple):
            self.check_size(len(result), node)
        return self.account(result, node)

    def _number_op(self, kind, a, b, node):
        if kind is ast.Pow and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
            if b * abs(a).bit_length() > MAX_INT_BITS:
                self.fail(node, "the exponent is too large to compute")
        if kind is ast.LShift and isinstance(b, int) and b > MAX_INT_BITS:
            self.fail(node, "the shift is too large to compute")
        if kind is ast.Mult and isinstance(a, int) and isinstance(b, int):
            if a.bit_length() + b.bit_length() > MAX_INT_BITS:
                self.fail(node, "the product is too large to compute")
        result = _BINOP_FUNCS[kind](a, b)
        if isinstance(result, int) and not isinstance(result, bool) and result.bit_length() > MAX_INT_BITS:
            self.fail(node, "the number is too large to compute with")
        if isinstance(result, complex):
            self.fail(node, "the result is not a real number")
        return result

    def _check_operands(self, kind, left, right, node, symbol: str) -> None:
        # repetition of text and lists: refused before Python builds a gigabyte
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(count, int) and kind is ast.Mult:
                self.check_size(len(seq) * max(count, 0), node)
        if isinstance(left, str | list | tuple) and isinstance(right, type(left)) and kind is ast.Add:
            self.check_size(len(left) + len(right), node)
        lt, rt = isinstance(left, torch.Tensor), isinstance(right, torch.Tensor)
        if not (lt or rt):
            return
        shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else () for v in (left, right)]
        if kind is ast.MatMult:
            if not (lt and rt):
                self.fail(node, "`@` needs two tensors: use `*` to multiply by a number")
            a, b = shapes
            if not a or not b:
                self.fail(
                    node,
                    f"`@` needs tensors with at least one dimension, got shapes {a} and {b}: "
                    "use `*` for scalars",
                )
            inner = b[-2] if len(b) >= 2 else b[0]
            if a[-1] != inner:
                self.fail(
                    node,
                    f"matmul needs matching inner sizes: {a} @ {b} pairs {a[-1]} with {inner}; "
                    "try `.T` on one side",
                )
            out = _matmul_shape(a, b)
            self.check_elements(math.prod(out), node)
            self._count_products(math.prod(out) * a[-1], node)
            return
        out = _broadcast(shapes[0], shapes[1])
        if out is None:
            self.fail(
                node,
                f"shapes {shapes[0]} and {shapes[1]} do not broadcast for `{symbol}`: sizes must "
                "match or be 1, compared from the right",
            )
        self.check_elements(math.prod(out), node, f"`{symbol}` of shape {tuple(out)}")

    def expr_UnaryOp(self, node: ast.UnaryOp, scope):  # noqa: N802
        value = self.evaluate(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not self.truth(value, node.operand)
        if isinstance(node.op, ast.USub):
            return self.account(-value, node)
        if isinstance(node.op, ast.UAdd):
            return +value
        if isinstance(node.op, ast.Invert):
            return self.account(~value, node)
        self.fail(node, "this operator is not supported")

    def expr_BoolOp(self, node: ast.BoolOp, scope):  # noqa: N802
        is_and = isinstance(node.op, ast.And)
        value = None
        for e in node.values:
            value = self.evaluate(e, scope)
            truth = self.truth(value, e)
            if is_and and not truth or not is_and and truth:
                return value
        return value

    def expr_Compare(self, node: ast.Compare, scope):  # noqa: N802
        left = self.evaluate(node.left, scope)
        result = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.evaluate(right_node, scope)
            if isinstance(op, ast.In | ast.NotIn) and not isinstance(
                right, list | tuple | dict | str | range | torch.Tensor | torch.Size
            ):
                self.fail(node, f"`in` needs a list, tuple, dict, string or tensor, not {_kind(right)}")
            result = _COMPARE[type(op)](left, right)
            if isinstance(result, torch.Tensor):
                self.account(result, node)
                if len(node.ops) == 1:
                    return result
            if not self.truth(result, node):
                return result
            left = right
        return result

    def expr_IfExp(self, node: ast.IfExp, scope):  # noqa: N802
        if self.truth(self.evaluate(node.test, scope), node.test):
            return self.evaluate(node.body, scope)
        return self.evaluate(node.orelse, scope)

    def expr_Attribute(self, node: ast.Attribute, scope):  # noqa: N802
        owner = self.evaluate(node.value, scope)
        return self.get_attr(owner, node.attr, node)

    def expr_Subscript(self, node: ast.Subscript, scope):  # noqa: N802
        owner = self.evaluate(node.value, scope)
        index = self.evaluate(node.slice, scope)
        return self.get_item(owner, index, node)

    def expr_ListComp(self, node: ast.ListComp, scope):  # noqa: N802
        out: list = []
        self._comprehension(
            node.generators, 0, Scope(scope), lambda s: out.append(self.evaluate(node.elt, s)), node
        )
        return out

    def expr_GeneratorExp(self, node: ast.GeneratorExp, scope):  # noqa: N802
        # evaluated at once: a program's generators are short, and a lazy one would escape the limits
        return self.expr_ListComp(node, scope)

    def expr_DictComp(self, node: ast.DictComp, scope):  # noqa: N802
        out: dict = {}

        def put(s):
            out[self.evaluate(node.key, s)] = self.evaluate(node.value, s)

        self._comprehension(node.generators, 0, Scope(scope), put, node)
        return out

    def _comprehension(self, generators, index: int, scope: Scope, emit, node) -> None:
        if index == len(generators):
            emit(scope)
            return
        gen = generators[index]
        for item in self.iterate(self.evaluate(gen.iter, scope), gen.iter):
            self._loop_pass(node)
            self.assign(gen.target, item, scope)
            if all(self.truth(self.evaluate(cond, scope), cond) for cond in gen.ifs):
                self._comprehension(generators, index + 1, scope, emit, node)

    def expr_Call(self, node: ast.Call, scope):  # noqa: N802
        func = self.evaluate(node.func, scope)
        if isinstance(func, Builtin) and func.name == "param" and func.kind == "ours":
            # the first language's param(value): its initial value is made off the graph, as a leaf is
            with torch.no_grad(), self.hooks.paused():
                return self._call_node(func, node, scope)
        return self._call_node(func, node, scope)

    def _call_node(self, func, node: ast.Call, scope):
        args: list = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                args.extend(self.bounded_list(self.evaluate(a.value, scope), a))
            else:
                args.append(self.evaluate(a, scope))
        kwargs: dict = {}
        for kw in node.keywords:
            if kw.arg is None:
                extra = self.evaluate(kw.value, scope)
                if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
                    self.fail(kw, "`**` needs a dict with text keys")
                kwargs.update(extra)
            else:
                kwargs[kw.arg] = self.evaluate(kw.value, scope)
        if isinstance(func, SuperProxy):
            self.fail(node, "use `super().__init__()` or `super().method(...)`")
        if func is _SUPER:
            return self._super(args, node, scope)
        return self.call(func, args, kwargs, node)

    # -- truth, iteration, sizes ---------------------------------------------------------------------

    def truth(self, value, node) -> bool:
        """bool(value), with torch's error for a tensor of many elements explained."""
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            self.fail(
                node,
                f"a tensor of {value.numel()} elements is not True or False: use `.all()`, "
                "`.any()` or compare one element",
            )
        if isinstance(value, micrograd.Value):
            return bool(value.data)
        return bool(value)

    def iterate(self, value, node):
        """Iterate a value a program may loop over."""
        if isinstance(value, dict):
            return iter(list(value))
        if isinstance(value, list | tuple | range | str | torch.Size | zip | enumerate | map | reversed):
            return iter(value)
        if isinstance(value, torch.Tensor):
            if value.dim() == 0:
                self.fail(node, "a 0-d tensor cannot be iterated")
            return iter(value)
        if isinstance(value, Iterable) and type(value).__name__ in (
            "generator",
            "dict_keys",
            "dict_values",
            "dict_items",
            "list_iterator",
        ):
            return iter(value)
        if isinstance(value, nn.Sequential | nn.ModuleList):
            return iter(value)
        self.fail(node, f"a {_kind(value)} cannot be looped over")

    def bounded_list(self, value, node) -> list:
        """`list(value)`, refusing more items than the limit (a range of a billion, say)."""
        if isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, range | str | dict):
            self.check_size(len(value), node)
        out = []
        for item in self.iterate(value, node):
            out.append(item)
            if len(out) > self.limits.collection:
                self.check_size(len(out), node)
        return out

    def check_size(self, n: int, node) -> None:
        """Refuse a list, tuple, dict or string longer than the limit."""
        if n > self.limits.collection:
            self.fail(node, f"a value of {n:,} items is over the limit of {self.limits.collection:,}")

    def check_elements(self, n: int, node, what: str = "a tensor") -> None:
        """Refuse a tensor of more elements than the limit, before it is made."""
        if n > self.limits.elements:
            self.fail(
                node, f"{what} would hold {n:,} elements; the limit is {self.limits.elements:,} per tensor"
            )

    def _count_products(self, work: int, node) -> None:
        self.products += int(work)
        if self.products > self.limits.products:
            message = (
                f"the matrix products of this program need more than {self.limits.products:,} "
                "multiply-adds; use smaller tensors"
            )
            if node is None:
                raise ExprError(message, self.line)
            self.fail(node, message)

    def account(self, value, node):
        """Count the elements of a result (refusing one over the per-tensor or total limit); returns it."""
        if isinstance(value, torch.Tensor):
            n = value.numel()
            self.check_elements(n, node)
            self.total_elements += n
            if self.total_elements > self.limits.total_elements:
                self.fail(
                    node, f"the program made more than {self.limits.total_elements:,} tensor elements in all"
                )
        elif isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
            for v in value:
                self.account(v, node)
        return value

    # -- output --------------------------------------------------------------------------------------

    def write(self, text: str, node) -> None:
        """Printed text (the output pane, stdout for `grad`), up to the limit."""
        self.output_chars += len(text)
        if self.output_chars > self.limits.output_chars:
            self.fail(node, f"the program printed more than {self.limits.output_chars:,} characters")
        self.output_parts.append(text)
        self._event(Event("print", self.line, text))

    def warn(self, text: str) -> None:
        """A warning torch gives (e.g. `.grad` of a non-leaf), in the output with its line."""
        line = f"warning (line {self.line}): {text}\n"
        if self.output_parts and self.output_parts[-1] == line:
            return
        self.write(line, None)

    @property
    def output_text(self) -> str:
        """Everything the program printed."""
        return "".join(self.output_parts)

    # -- leaves --------------------------------------------------------------------------------------

    def register_leaf(self, t: torch.Tensor) -> torch.Tensor:
        """A new leaf that requires grad: apply its override (by creation order) and remember it."""
        index = len(self.leaves)
        if self.dtype is not None and t.is_floating_point() and t.dtype != self.dtype:
            with torch.no_grad(), self.hooks.paused():
                t.data = t.data.to(self.dtype)
        if index in self.overrides:
            value = torch.as_tensor(self.overrides[index], dtype=t.dtype)
            if value.shape != t.shape:
                if value.numel() == t.numel():
                    value = value.reshape(t.shape)
                else:
                    raise ExprError(
                        f"the value given for a leaf has shape {tuple(value.shape)}, the program's "
                        f"has {tuple(t.shape)}",
                        self.line,
                    )
            with torch.no_grad(), self.hooks.paused():
                t.copy_(value)
        with torch.no_grad(), self.hooks.paused():
            self.initial[index] = t.detach().clone()
        self.leaves.append(t)
        return t

    def register_module(self, module: nn.Module) -> nn.Module:
        """A new module: its dtype for this run and its parameters as leaves, in order."""
        if self.dtype is not None:
            module.to(self.dtype)
        for p in module.parameters():
            if p.requires_grad and not any(p is q for q in self.leaves):
                self.register_leaf(p)
        return module

    def backward(self, tensor, gradient, retain_graph, create_graph, inputs):
        """`tensor.backward(...)`, through the hooks (micrograd's Value calls this too)."""
        line = self.line

        def run():
            return torch.autograd.backward(tensor, gradient, retain_graph=retain_graph,
                                           create_graph=create_graph, inputs=inputs)

        value = (
            torch.as_tensor(gradient).detach() if isinstance(gradient, torch.Tensor | float | int) else None
        )
        self.passes.append(Pass("backward", tensor, line, gradient is not None, value))
        return self.hooks.backward(run, tensor, "backward", line)

    def _event(self, event: Event) -> None:
        if event.kind != "print":
            self.events.append(event)
        self.hooks.event(event)

    def show_graph(self, tensor: torch.Tensor) -> None:
        """micrograd's draw_dot: the graph of `tensor` is the one to show."""
        self.shown = tensor
        self._event(Event("show", self.line, "draw_dot"))

    # -- attributes ------------------------------------------------------------------------------------

    def get_attr(self, owner, name: str, node):
        """`owner.name` under the allow-list."""
        if name.startswith("_") and not (isinstance(owner, SuperProxy) and name == "__init__"):
            self.fail(node, f"`.{name}`: attributes starting with `_` are not allowed")
        if isinstance(owner, Namespace):
            return self._namespace_attr(owner, name, node)
        if isinstance(owner, torch.Tensor):
            return self._tensor_attr(owner, name, node)
        if isinstance(owner, SuperProxy):
            return self._super_attr(owner, name, node)
        if isinstance(owner, nn.Module):
            return self._module_attr(owner, name, node)
        if isinstance(owner, torch.optim.Optimizer):
            if name in torchapi.OPTIMIZER_ATTRIBUTES:
                if name == "param_groups":
                    return owner.param_groups
                return Builtin(name, None, "optimizer", owner)
            self.fail(
                node,
                f"`.{name}` is not available on an optimizer (allowed: .step() .zero_grad() .param_groups)",
            )
        if isinstance(owner, micrograd.CLASSES):
            if name in type(owner).PUBLIC:
                value = getattr(owner, name)
                return Builtin(name, value, "python") if callable(value) else value
            self.fail(
                node,
                f"`.{name}` is not available on a micrograd {type(owner).__name__}"
                f"{suggest(name, type(owner).PUBLIC)}",
            )
        if isinstance(owner, torch.dtype):
            if name in ("is_floating_point", "itemsize"):
                return getattr(owner, name)
        if isinstance(owner, torch.autograd.graph.Node):
            if name == "next_functions":
                return owner.next_functions
            if name == "name":
                return Builtin("name", owner.name, "python")
            self.fail(node, "a grad_fn shows `.next_functions` and `.name()` here")
        for kind, methods in _PY_METHODS.items():
            if type(owner) is kind or (kind is torch.Size and isinstance(owner, torch.Size)):
                if name in methods:
                    return Builtin(name, getattr(owner, name), "pymethod", owner)
                self.fail(
                    node, f"`.{name}` is not available on a {type(owner).__name__}{suggest(name, methods)}"
                )
        if isinstance(owner, float | int) and name in ("real", "imag", "is_integer", "conjugate"):
            return getattr(owner, name)
        if isinstance(owner, UserFunction | Builtin):
            self.fail(node, f"`.{name}`: functions have no attributes here")
        if isinstance(owner, type) and owner in self.user_classes:
            function = owner.program_methods.get(name)
            if function is not None:
                return function
        self.fail(node, f"`.{name}` is not available on a {_kind(owner)}")

    def _namespace_attr(self, owner: Namespace, name: str, node):
        if name in owner.refused:
            self.fail(node, f"`{owner.name}.{name}` is not allowed: {owner.refused[name]}")
        value = owner.lookup(name)
        if value is None:
            members = owner.members
            self.fail(node, f"`{owner.name}.{name}` is not available here{suggest(name, members)}")
        return value

    def _tensor_attr(self, t: torch.Tensor, name: str, node):
        if name in torchapi.TENSOR_ATTRIBUTES:
            if name == "grad" and not t.is_leaf and not t.retains_grad:
                self.warn(
                    "`.grad` of a non-leaf tensor is None: autograd keeps gradients only for leaves "
                    "(call `.retain_grad()` before backward to keep this one)"
                )
                return None
            if name in ("T", "mT", "H") and t.dim() != 2 and name == "T":
                if t.dim() > 2:
                    self.fail(
                        node,
                        f"`.T` needs at most 2 dimensions, got shape {tuple(t.shape)}: use "
                        "`.transpose(d0, d1)` or `.permute(...)`",
                    )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return t.T
            return getattr(t, name)
        if name in torchapi.tensor_methods():
            return Builtin(name, None, "method", t)
        if name in torchapi.REFUSED:
            self.fail(node, f"`.{name}` is not allowed: {torchapi.REFUSED[name]}")
        hint = _METHOD_HINTS.get(name) or suggest(
            name, torchapi.tensor_methods() | torchapi.TENSOR_ATTRIBUTES
        )
        self.fail(node, f"`.{name}` is not a tensor method or attribute here{hint}")

    def _module_attr(self, module: nn.Module, name: str, node):
        cls = type(module)
        if cls in self.user_classes or any(c in self.user_classes for c in cls.__mro__):
            for c in cls.__mro__:
                if c in self.user_classes and name in c.program_methods:
                    return BoundMethod(c.program_methods[name], module)
        for store in ("_parameters", "_buffers", "_modules"):
            if name in module.__dict__.get(store, {}):
                return getattr(module, name)
        if name in module.__dict__:
            return module.__dict__[name]
        if name in torchapi.MODULE_METHODS:
            return Builtin(name, None, "module", module)
        if hasattr(cls, name) and not callable(getattr(cls, name)) and cls.__module__.startswith("program"):
            return getattr(module, name)
        known = list(module.__dict__.get("_modules", {})) + list(module.__dict__.get("_parameters", {}))
        self.fail(node, f"`.{name}` is not available on {cls.__name__}{suggest(name, known)}")

    def set_attr(self, owner, name: str, value, node) -> None:
        """`owner.name = value` under the allow-list."""
        if name.startswith("_"):
            self.fail(node, f"`.{name}`: attributes starting with `_` are not allowed")
        if isinstance(owner, torch.Tensor):
            if name not in torchapi.TENSOR_SETTABLE:
                self.fail(node, f"`.{name}` of a tensor cannot be set (allowed: .grad .data .requires_grad)")
            if name == "requires_grad" and value and owner.is_leaf and not owner.requires_grad:
                setattr(owner, name, value)
                self.register_leaf(owner)
                return
            setattr(owner, name, value)
            return
        if isinstance(owner, nn.Module):
            if isinstance(value, UserFunction | BoundMethod | Builtin | Namespace):
                self.fail(node, "a module's attributes hold tensors, modules, numbers and text")
            setattr(owner, name, value)
            return
        if isinstance(owner, micrograd.Value) and name in ("data", "grad", "label"):
            setattr(owner, name, value)
            return
        self.fail(node, f"`.{name}` of a {_kind(owner)} cannot be set")

    def get_item(self, owner, index, node):
        """`owner[index]`."""
        if isinstance(owner, torch.Tensor):
            return self.account(owner[_index(index)], node)
        if isinstance(owner, list | tuple | str | dict | torch.Size | range):
            return owner[index]
        if isinstance(owner, nn.Sequential | nn.ModuleList | nn.ModuleDict):
            return owner[index]
        self.fail(node, f"a {_kind(owner)} cannot be indexed")

    def set_item(self, owner, index, value, node) -> None:
        """`owner[index] = value`."""
        if isinstance(owner, torch.Tensor):
            owner[_index(index)] = value
            return
        if isinstance(owner, list | dict):
            if isinstance(owner, dict):
                self.check_size(len(owner) + 1, node)
            owner[index] = value
            return
        self.fail(node, f"items of a {_kind(owner)} cannot be set")

    # -- calls -----------------------------------------------------------------------------------------

    def call(self, func, args: list, kwargs: dict, node):
        """Call anything a program may call."""
        if isinstance(func, Builtin):
            return self.call_builtin(func, args, kwargs, node)
        if isinstance(func, UserFunction):
            return self.call_user(func, args, kwargs, node)
        if isinstance(func, BoundMethod):
            return self.call_user(func.function, [func.instance, *args], kwargs, node)
        if isinstance(func, type):
            return self.construct(func, args, kwargs, node)
        if isinstance(func, nn.Module):
            return self.account(func(*args, **kwargs), node)
        if isinstance(func, micrograd.Module):
            return func(*args, **kwargs)
        self.fail(node, f"a {_kind(func)} cannot be called")

    def construct(self, cls: type, args, kwargs, node):
        """`Class(...)`: a program's nn.Module, an allowed nn class, optimizer or micrograd class."""
        if cls in self.user_classes:
            return self.register_module(cls(*args, **kwargs))
        if cls is nn.Parameter:
            data = args[0] if args else kwargs.get("data")
            param = nn.Parameter(*args, **kwargs)
            if param.requires_grad and data is not None:
                self.register_leaf(param)
            return param
        if torchapi.is_allowed_module_class(cls):
            self._check_module_size(cls, args, kwargs, node)
            return self.register_module(cls(*args, **kwargs))
        if torchapi.is_optimizer_class(cls):
            started = time.monotonic()
            optimizer = cls(*args, **kwargs)
            # torch imports its compiler machinery on the first optimizer of a process (seconds on a busy
            # machine): that is not the program's time
            self.deadline += time.monotonic() - started
            return optimizer
        if cls in micrograd.CLASSES:
            return cls(*args, **kwargs)
        if cls in _GRAD_MODES:  # torch.no_grad(), torch.enable_grad(), ... for `with`
            return cls(*args, **kwargs)
        if cls in (torch.Tensor,):
            return self.call_torch("Tensor", torch.Tensor, args, kwargs, node)
        if cls in (torch.Size,):
            return torch.Size(*args)
        if cls in _CONVERSIONS:
            return self.call_builtin(self.builtins[cls.__name__], args, kwargs, node)
        self.fail(node, f"`{cls.__name__}` cannot be created here")

    def _check_module_size(self, cls, args, kwargs, node) -> None:
        ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        ints += [
            v
            for k, v in kwargs.items()
            if k in ("in_features", "out_features", "num_embeddings", "embedding_dim") and isinstance(v, int)
        ]
        if cls in (nn.Linear, nn.Embedding) and len(ints) >= 2:
            if min(ints[:2]) < 0:
                self.fail(node, "a size cannot be negative")
            self.check_elements(ints[0] * ints[1], node, f"a {cls.__name__} weight")
        if cls is nn.LayerNorm and ints:
            self.check_elements(ints[0], node)

    def call_user(self, function: UserFunction, args: list, kwargs: dict, node):
        """Call a `def` of the program in a new scope."""
        if self.depth >= self.limits.call_depth:
            self.fail(node, f"calls are nested more than {self.limits.call_depth} deep (endless recursion?)")
        scope = Scope(function.scope)
        self._bind_arguments(function, args, kwargs, scope, node)
        self.depth += 1
        self.owners.append(function.owner)
        line = self.line
        try:
            self.exec_block(function.node.body, scope)
        except _Return as ret:
            return ret.value
        except (_Break, _Continue):
            self.fail(node, "`break` or `continue` outside a loop")
        finally:
            self.depth -= 1
            self.owners.pop()
            self.line = line
            self.hooks.at_line(line)
        return None

    def _bind_arguments(self, function: UserFunction, args: list, kwargs: dict, scope: Scope, node) -> None:
        spec = function.node.args
        params = [a.arg for a in spec.posonlyargs + spec.args]
        defaults = spec.defaults
        first_default = len(params) - len(defaults)
        name = function.name
        if len(args) > len(params) and spec.vararg is None:
            self.fail(node, f"`{name}` takes {len(params)} positional arguments but {len(args)} were given")
        for i, p in enumerate(params):
            if i < len(args):
                scope.vars[p] = args[i]
                if p in kwargs:
                    self.fail(node, f"`{name}` got two values for `{p}`")
            elif p in kwargs:
                scope.vars[p] = kwargs.pop(p)
            elif i >= first_default:
                scope.vars[p] = self.evaluate(defaults[i - first_default], function.scope)
            else:
                self.fail(node, f"`{name}` is missing the argument `{p}`")
        if spec.vararg is not None:
            scope.vars[spec.vararg.arg] = tuple(args[len(params) :])
        for kwonly, default in zip(spec.kwonlyargs, spec.kw_defaults, strict=True):
            if kwonly.arg in kwargs:
                scope.vars[kwonly.arg] = kwargs.pop(kwonly.arg)
            elif default is not None:
                scope.vars[kwonly.arg] = self.evaluate(default, function.scope)
            else:
                self.fail(node, f"`{name}` is missing the argument `{kwonly.arg}`")
        leftover = {k: v for k, v in kwargs.items() if k not in params}
        if spec.kwarg is not None:
            scope.vars[spec.kwarg.arg] = leftover
        elif leftover:
            key = next(iter(leftover))
            self.fail(node, f"`{name}` has no argument `{key}`{suggest(key, params)}")

    def _super(self, args, node, scope):
        instance = None
        cls = None
        if len(args) == 2:
            cls, instance = args
        else:
            try:
                instance = scope.lookup("self")
            except KeyError:
                self.fail(node, "super() works inside a method of a class")
            cls = (self.owners[-1] if self.owners else None) or type(instance)
        return SuperProxy(cls, instance)

    def _super_attr(self, proxy: SuperProxy, name: str, node):
        mro = type(proxy.instance).__mro__
        try:
            start = mro.index(proxy.cls) + 1
        except ValueError:
            start = 1
        for c in mro[start:]:
            if c in self.user_classes and name in c.program_methods:
                return BoundMethod(c.program_methods[name], proxy.instance)
            if name == "__init__" and c not in self.user_classes:
                return Builtin("__init__", _base_init(c, proxy.instance), "python")
        self.fail(node, f"`super().{name}` is not available here")

    # builtins of ours, torch functions, methods

    def call_builtin(self, func: Builtin, args, kwargs, node):
        """Call a Builtin with the checks its kind needs."""
        kind = func.kind
        if kind == "python":
            return func.fn(*args, **kwargs)
        if kind == "ours":
            return func.fn(node, *args, **kwargs)
        if kind == "torch":
            return self.call_torch(func.name, func.fn, args, kwargs, node)
        if kind == "method":
            return self.call_method(func.owner, func.name, args, kwargs, node)
        if kind == "pymethod":
            return self._py_method(func, args, kwargs, node)
        if kind == "module":
            return self._module_method(func.owner, func.name, args, kwargs, node)
        if kind == "optimizer":
            return self._optimizer_method(func.owner, func.name, args, kwargs, node)
        if kind == "functional":
            return self.call_torch(func.name, func.fn, args, kwargs, node)
        if kind == "init":
            with torch.no_grad(), self.hooks.paused():
                return func.fn(*args, **kwargs)
        self.fail(node, f"`{func.name}` cannot be called")

    def _py_method(self, func: Builtin, args, kwargs, node):
        owner, name = func.owner, func.name
        if name == "format" and isinstance(owner, str):
            return self._format_text(owner, args, kwargs, node)
        if name in ("append", "insert", "extend") and isinstance(owner, list):
            extra = len(self.bounded_list(args[-1], node)) if name == "extend" and args else 1
            self.check_size(len(owner) + extra, node)
            if name == "extend":
                return owner.extend(self.bounded_list(args[0], node))
        if name == "join" and isinstance(owner, str):
            items = self.bounded_list(args[0], node) if args else []
            self.check_size(sum(len(str(i)) for i in items) + len(owner) * len(items), node)
            return owner.join(items)
        if name == "replace" and isinstance(owner, str) and len(args) >= 2:
            self.check_size(len(owner) * max(len(str(args[1])), 1), node)
        return func.fn(*args, **kwargs)

    def _format_text(self, text: str, args, kwargs, node) -> str:
        out = []
        auto = 0
        for literal, field_name, spec, conversion in string.Formatter().parse(text):
            out.append(literal)
            if field_name is None:
                continue
            if field_name == "":
                key: object = auto
                auto += 1
            elif field_name.isdigit():
                key = int(field_name)
            elif field_name.isidentifier():
                key = field_name
            else:
                self.fail(node, "format fields are `{}`, `{0}` or `{name}` here")
            value = args[key] if isinstance(key, int) else kwargs[key]
            if conversion == "r":
                value = repr(value)
            elif conversion == "s":
                value = str(value)
            if spec and "{" in spec:
                self.fail(node, "nested format fields are not supported")
            out.append(self.format_value(value, spec or "", node))
        result = "".join(out)
        self.check_size(len(result), node)
        return result

    def _module_method(self, module: nn.Module, name: str, args, kwargs, node):
        if name == "zero_grad":
            result = module.zero_grad(*args, **kwargs)
            self._event(Event("zero_grad", self.line, f"{type(module).__name__}.zero_grad()"))
            return result
        if name in ("double", "float"):
            return getattr(module, name)() if self.dtype is None else module.to(self.dtype)
        if name in ("register_parameter", "register_buffer", "add_module") and args:
            if not isinstance(args[0], str) or args[0].startswith("_"):
                self.fail(node, "names of parameters, buffers and modules are text not starting with `_`")
        if name in ("append", "extend", "insert") and not isinstance(module, nn.Sequential | nn.ModuleList):
            self.fail(node, f"`.{name}` works on nn.Sequential and nn.ModuleList")
        if name in ("keys", "values", "items") and not isinstance(module, nn.ModuleDict):
            self.fail(node, f"`.{name}` works on nn.ModuleDict")
        return self.account(getattr(module, name)(*args, **kwargs), node)

    def _optimizer_method(self, optimizer, name: str, args, kwargs, node):
        if name == "zero_grad":
            result = optimizer.zero_grad(*args, **kwargs)
            self._event(Event("zero_grad", self.line, "optimizer.zero_grad()"))
            return result
        if args or kwargs:
            self.fail(node, "optimizer.step() takes no arguments here")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        # the step, and the copies that write it out, are no part of the graph: recorded, the copies would
        # make the parameters' nodes of the next iteration before the update (showing the old values)
        with self.hooks.paused(), torch.no_grad():
            before = [p.detach().clone() for p in params]
            optimizer.step()
            text = _step_text(optimizer, params, before)
        self._event(Event("step", self.line, text))
        return None

    def call_method(self, t: torch.Tensor, name: str, args, kwargs, node):
        """`t.name(*args)` for an allowed tensor method."""
        if name == "backward":
            return self._backward(t, args, kwargs, node)
        if name == "requires_grad_":
            flag = args[0] if args else kwargs.get("requires_grad", True)
            was = t.requires_grad
            t.requires_grad_(flag)
            if flag and not was and t.is_leaf:
                self.register_leaf(t)
            return t
        if name in ("to", "type") and args and isinstance(args[0], str) and args[0] not in ("cpu",):
            self.fail(node, f"`.{name}('{args[0]}')`: programs run on the CPU")
        if self.dtype is not None and name in ("float", "double", "half", "bfloat16"):
            return t.to(self.dtype)
        if self.dtype is not None and name == "to":
            args = [self.dtype if isinstance(a, torch.dtype) and a.is_floating_point else a for a in args]
            if isinstance(kwargs.get("dtype"), torch.dtype) and kwargs["dtype"].is_floating_point:
                kwargs = {**kwargs, "dtype": self.dtype}
        if name in ("item", "tolist") and t.numel() > 1 and name == "item":
            self.fail(
                node,
                f"`.item()` needs a one-element tensor; this one has {t.numel()} elements "
                f"(shape {tuple(t.shape)})",
            )
        if name in torchapi.GROWERS:
            self._precheck(lambda *a, **k: getattr(a[0], name)(*a[1:], **k), [t, *args], kwargs, node, name)
        if name in torchapi.PRODUCTS:
            self.check_product(name, [t, *args], node)
        if name in ("new_tensor", "new_zeros", "new_ones", "new_full"):
            self.check_sizes(args[0] if name != "new_tensor" and args else None, node)
        return self.account(getattr(t, name)(*args, **kwargs), node)

    def _backward(self, t: torch.Tensor, args, kwargs, node):
        names = ("gradient", "retain_graph", "create_graph", "inputs")
        bound = dict(zip(names, args, strict=False))
        for k, v in kwargs.items():
            if k not in names:
                self.fail(node, f"backward() has no argument `{k}`{suggest(k, names)}")
            bound[k] = v
        gradient = bound.get("gradient")
        if gradient is None and t.numel() != 1:
            self.fail(
                node,
                f"backward() of a tensor with {t.numel()} elements needs `gradient=` (a tensor "
                f"of shape {tuple(t.shape)}, the upstream dL/d{{this}}), or reduce it first "
                "with `.sum()` or `.mean()`",
            )
        if not t.requires_grad:
            self.fail(
                node,
                "this tensor does not require grad and has no grad_fn: nothing it depends on "
                "was created with `requires_grad=True`",
            )
        return self.backward(
            t, gradient, bound.get("retain_graph"), bound.get("create_graph", False), bound.get("inputs")
        )

    def autograd_grad(
        self,
        node,
        outputs,
        inputs,
        grad_outputs=None,
        retain_graph=None,
        create_graph=False,
        allow_unused=None,
        **rest,
    ):
        """`torch.autograd.grad(...)`: gradients returned, `.grad` left alone; one pass on the timeline."""
        if rest:
            key = next(iter(rest))
            self.fail(node, f"torch.autograd.grad has no argument `{key}` here")
        root = outputs[0] if isinstance(outputs, list | tuple) else outputs
        line = self.line

        def run():
            return torch.autograd.grad(
                outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused=allow_unused
            )

        self.passes.append(Pass("grad", root, line, grad_outputs is not None))
        return self.hooks.backward(run, root, "grad", line)

    def autograd_backward(
        self, node, tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None
    ):
        """`torch.autograd.backward(...)`: the same as `tensors.backward(...)`."""
        t = tensors[0] if isinstance(tensors, list | tuple) else tensors
        grad = grad_tensors[0] if isinstance(grad_tensors, list | tuple) else grad_tensors
        return self.backward(t, grad, retain_graph, create_graph, inputs)

    def call_torch(self, name: str, fn, args, kwargs, node):
        """An allowed torch (or torch.nn.functional) function, with the size checks it needs."""
        if name in torchapi.CONSTRUCTORS or name == "Tensor":
            return self._construct_tensor(name, fn, args, kwargs, node)
        if name in ("manual_seed", "seed"):
            with self.hooks.paused():
                return fn(*args, **kwargs)
        if name in torchapi.PRODUCTS:
            self.check_product(name, args, node)
        if name in torchapi.GROWERS or name in torchapi.SHAPES or name in torchapi.LINALG:
            self._precheck(fn, args, kwargs, node, name)
        elif len([a for a in args if isinstance(a, torch.Tensor)]) > 1:
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            try:
                self.check_elements(math.prod(torch.broadcast_shapes(*shapes)), node)
            except RuntimeError:
                pass  # torch says what is wrong
        if self.dtype is not None and isinstance(kwargs.get("dtype"), torch.dtype):
            if kwargs["dtype"].is_floating_point:
                kwargs = {**kwargs, "dtype": self.dtype}
        return self.account(fn(*args, **kwargs), node)

    def _construct_tensor(self, name: str, fn, args, kwargs, node):
        kwargs = dict(kwargs)
        if "device" in kwargs and str(kwargs["device"]) != "cpu":
            self.fail(node, "programs run on the CPU: leave out `device=`")
        if "out" in kwargs:
            self.fail(node, "`out=` is not supported here")
        requires_grad = bool(kwargs.pop("requires_grad", False))
        if name in ("ones", "zeros", "rand", "randn", "full", "randint", "randperm", "eye", "Tensor"):
            self.check_sizes(
                args if name != "full" else (args[0] if args else kwargs.get("size")), node, name
            )
        if name in ("arange",):
            numbers = [a for a in args if _is_number(a)]
            if numbers:
                start, end, step = (
                    (0, numbers[0], 1)
                    if len(numbers) == 1
                    else (numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 1)
                )
                if step == 0:
                    self.fail(node, "arange's step cannot be 0")
                self.check_elements(max(0, math.ceil((end - start) / step)), node)
        if name in ("linspace", "logspace"):
            steps = args[2] if len(args) > 2 else kwargs.get("steps")
            if isinstance(steps, int):
                self.check_elements(steps, node)
        if name in ("tensor", "as_tensor", "Tensor") and args and isinstance(args[0], list | tuple):
            self.check_elements(_nested_count(args[0], self.limits.elements + 1), node)
        if (
            self.dtype is not None
            and isinstance(kwargs.get("dtype"), torch.dtype)
            and kwargs["dtype"].is_floating_point
        ):
            kwargs["dtype"] = self.dtype
        if name in ("tensor", "as_tensor") and args and isinstance(args[0], torch.Tensor):
            if name == "tensor":
                self.warn("torch.tensor(t) of a tensor copies it; use t.clone().detach()")
        with self.hooks.paused():
            if name == "Tensor":
                t = torch.Tensor(*args)
            else:
                t = fn(*args, **kwargs)
        if self.dtype is not None and isinstance(t, torch.Tensor) and t.is_floating_point():
            t = t.to(self.dtype)
        if requires_grad:
            if not (t.is_floating_point() or t.is_complex()):
                self.fail(
                    node,
                    f"only floating-point tensors can require gradients, this one is "
                    f"{str(t.dtype).removeprefix('torch.')}: write numbers with a decimal point "
                    "(2.0) or pass dtype=torch.float32",
                )
            t.requires_grad_(True)
            self.register_leaf(t)
        return self.account(t, node)

    def check_sizes(self, sizes, node, what: str = "the tensor") -> None:
        """Refuse a constructor's sizes (ints, or one tuple of them) that would make too many elements."""
        if sizes is None:
            return
        if (
            isinstance(sizes, list | tuple | torch.Size)
            and len(sizes) == 1
            and isinstance(sizes[0], list | tuple | torch.Size)
        ):
            sizes = sizes[0]
        if isinstance(sizes, int):
            sizes = [sizes]
        if not isinstance(sizes, list | tuple | torch.Size):
            return
        ints = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)]
        if len(ints) != len(sizes):
            return  # torch.tensor-style data, checked elsewhere
        if any(s < 0 for s in ints):
            self.fail(node, f"a size cannot be negative (got {min(ints)})")
        if what == "eye" and len(ints) == 1:
            ints = ints * 2
        self.check_elements(math.prod(ints), node, f"{what}{tuple(ints)}")

    def check_product(self, name: str, args, node) -> None:
        """Count a matrix product's multiply-adds against the program's budget."""
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if len(tensors) >= 2:
            a, b = tensors[0], tensors[1]
            if name == "einsum" or not a.dim() or not b.dim():
                work = a.numel() * b.numel() if name in ("outer", "ger", "kron") else 0
                self._count_products(work, node)
                return
            inner = a.shape[-1]
            rows = max(a.numel() // max(inner, 1), 1)
            cols = b.shape[-1] if b.dim() >= 2 else 1
            self._count_products(rows * inner * cols, node)

    def _precheck(self, fn, args, kwargs, node, name: str) -> None:
        """Run the call on meta tensors first (not recorded): refuse a result over the element limit."""
        if not any(isinstance(a, torch.Tensor) for a in _flat(args, kwargs)):
            return
        try:
            with self.hooks.paused(), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fn(*_meta(args), **_meta(kwargs))
        except Exception:  # noqa: BLE001 -- the real call says what is wrong, or meta cannot run it
            return
        for r in _flat([result], {}):
            if isinstance(r, torch.Tensor):
                self.check_elements(r.numel(), node, f"`{name}` of shape {tuple(r.shape)}")


# one method per node type, looked up once per node (no string building on the hot path)
_STMT = {
    getattr(ast, name[5:]): fn
    for name, fn in vars(Interpreter).items()
    if name.startswith("stmt_") and hasattr(ast, name[5:])
}
_EXPR = {
    getattr(ast, name[5:]): fn
    for name, fn in vars(Interpreter).items()
    if name.startswith("expr_") and hasattr(ast, name[5:])
}

# ---------------------------------------------------------------------------------------- builtins

_MISSING = object()
_SUPER = object()

_IMPORT_HINTS = {
    "torch": "add `import torch` at the top",
    "nn": "add `import torch.nn as nn` (or `from torch import nn`)",
    "F": "add `import torch.nn.functional as F`",
    "optim": "add `import torch.optim as optim` (or `from torch import optim`)",
    "np": "numpy is not available: use torch",
    "numpy": "numpy is not available: use torch",
    "math": "add `import math`",
    "random": "add `import random`",
    "Value": "add `from micrograd.engine import Value`",
    "MLP": "add `from micrograd.nn import MLP`",
    "tensor": "add `from torch import tensor`",
    "grad": "add `from torch.autograd import grad`",
}

_METHOD_HINTS = {
    "transpose_": "",
    "numpy": ": numpy is not available; use .tolist() or .item()",
    "cuda": ": programs run on the CPU",
}

_CONVERSIONS = (int, float, bool, str, list, tuple, dict)
_GRAD_MODES = (torch.no_grad, torch.enable_grad, torch.set_grad_enabled, torch.inference_mode)


def _python_builtins(interp: Interpreter) -> dict[str, object]:
    """The builtins a program sees: Python's safe ones (bounded) and the language's legacy functions."""
    from explorer.core.lang import legacy

    def ours(fn):
        return Builtin(fn.__name__.strip("_"), fn, "ours")

    def _print(node, *args, sep=" ", end="\n", **_):
        interp.write(str(sep).join(_display(a) for a in args) + str(end), node)

    def _len(node, x):
        if isinstance(x, torch.Tensor) and x.dim() == 0:
            interp.fail(node, "len() of a 0-d tensor: it has no length (use .numel())")
        return len(x)

    def _range(node, *args):
        return range(*args)

    def _materialised(node, name, fn):
        def call(node, *args, **kwargs):
            if len(args) == 1 and not isinstance(args[0], torch.Tensor | micrograd.Value):
                args = (interp.bounded_list(args[0], node),)
            return fn(*args, **kwargs)

        return Builtin(name, call, "ours")

    def _sum(node, *args, **kwargs):
        if args and isinstance(args[0], torch.Tensor):
            return legacy.call(interp, "sum", list(args), kwargs, node)
        items = interp.bounded_list(args[0], node) if args else []
        return sum(items, *args[1:], **kwargs)

    def _extreme(name, fn):
        def call(node, *args, **kwargs):
            if len(args) == 1 and isinstance(args[0], torch.Tensor) and not kwargs:
                return legacy.call(interp, name, list(args), {}, node)
            if len(args) == 1:
                args = (interp.bounded_list(args[0], node),)
            if "key" in kwargs:
                interp.fail(node, f"{name}(key=...) is not supported here")
            return fn(*args, **kwargs)

        return Builtin(name, call, "ours")

    def _abs(node, x):
        return interp.account(abs(x), node)

    def _round(node, x, ndigits=None):
        if isinstance(x, torch.Tensor):
            return interp.account(
                torch.round(x) if ndigits is None else torch.round(x, decimals=ndigits), node
            )
        return round(x, ndigits) if ndigits is not None else round(x)

    def _isinstance(node, x, kinds):
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        real = []
        for k in kinds:
            if isinstance(k, Builtin) and k.name in _TYPE_BUILTINS:
                real.append(_TYPE_BUILTINS[k.name])
            elif isinstance(k, type):
                real.append(k)
            else:
                interp.fail(node, "isinstance needs a type such as int, float, list or torch.Tensor")
        return isinstance(x, tuple(real))

    def _conversion(kind):
        def call(node, *args, **kwargs):
            if kind in (list, tuple) and args:
                return kind(interp.bounded_list(args[0], node))
            if kind is dict and args:
                return dict(interp.bounded_list(args[0], node), **kwargs)
            if kind is str and args and isinstance(args[0], micrograd.Value):
                return repr(args[0])
            if kind in (int, float) and args and isinstance(args[0], micrograd.Value):
                return kind(args[0].data)
            if kind is int and args and isinstance(args[0], str) and len(args[0]) > 1000:
                interp.fail(node, "int() of text longer than 1,000 digits")
            return kind(*args, **kwargs)

        return Builtin(kind.__name__, call, "ours")

    def _zip(node, *args, strict=False):
        return zip(*(interp.bounded_list(a, node) for a in args), strict=strict)

    def _enumerate(node, x, start=0):
        return enumerate(interp.bounded_list(x, node), start)

    def _sorted(node, x, reverse=False):
        return sorted(interp.bounded_list(x, node), reverse=reverse)

    def _reversed(node, x):
        return list(reversed(interp.bounded_list(x, node)))

    def _type(node, x):
        return type(x)

    def _pow(node, a, b, *rest):
        if rest:
            interp.fail(node, "pow with a modulus is not supported")
        if _is_number(a) and _is_number(b):
            return interp._number_op(ast.Pow, a, b, node)
        return interp.account(a**b, node)

    def _divmod(node, a, b):
        return divmod(a, b)

    def _map(node, fn, *iterables):
        lists = [interp.bounded_list(i, node) for i in iterables]
        return [interp.call(fn, list(args), {}, node) for args in zip(*lists, strict=False)]

    def _hasattr(node, x, name):
        return isinstance(name, str) and not name.startswith("_") and hasattr(x, name)

    table: dict[str, object] = {
        "print": ours(_print), "len": ours(_len), "range": ours(_range), "abs": ours(_abs),
        "sum": Builtin("sum", _sum, "ours"), "min": _extreme("min", min), "max": _extreme("max", max),
        "any": _materialised(None, "any", any), "all": _materialised(None, "all", all),
        "zip": ours(_zip), "enumerate": ours(_enumerate), "sorted": ours(_sorted),
        "reversed": ours(_reversed), "round": ours(_round), "isinstance": ours(_isinstance),
        "type": ours(_type), "pow": ours(_pow), "divmod": ours(_divmod), "map": ours(_map),
        "hasattr": ours(_hasattr), "super": _SUPER, "True": True, "False": False, "None": None,
        "__name__": "__main__",
    }  # fmt: skip
    for kind in _CONVERSIONS:
        table[kind.__name__] = _conversion(kind)
    table.update(legacy.builtins(interp))
    return table


_TYPE_BUILTINS = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list,
    "tuple": tuple,
    "dict": dict,
}


# ---------------------------------------------------------------------------------------- namespaces

_MODULES = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.optim",
    "torch.autograd",
    "torch.nn.init",
    "math",
    "random",
    "micrograd",
    "micrograd.engine",
    "micrograd.nn",
)


def _module(interp: Interpreter, name: str, node) -> Namespace:
    """The namespace an `import` gives, or an ExprError naming what is allowed."""
    cache = interp.__dict__.setdefault("_namespaces", {})
    if name in cache:
        return cache[name]
    if name not in _MODULES:
        allowed = (
            "torch, torch.nn, torch.nn.functional, torch.optim, torch.autograd, math, random and micrograd"
        )
        top = name.split(".")[0]
        why = " (numpy is not available: use torch)" if top == "numpy" else ""
        interp.fail(node, f"`import {name}` is not allowed{why}: a program can import {allowed}")
    ns = _make_namespace(interp, name)
    cache[name] = ns
    return ns


def _torch_lookup(interp: Interpreter):
    def lookup(name: str):
        if name in ("nn", "optim", "autograd"):
            return _module(interp, f"torch.{name}", None)
        if name in torchapi.GRAD_MODE:
            return getattr(torch, name)
        value = torchapi.torch_attribute(name)
        if value is None:
            return None
        if isinstance(value, torch.dtype) or isinstance(value, float):
            return value
        if name in ("Tensor", "Size"):
            return value
        if name == "Generator":
            return None
        return Builtin(name, value, "torch")

    return lookup


def _make_namespace(interp: Interpreter, name: str) -> Namespace:
    if name == "torch":
        return Namespace(
            "torch",
            _torch_lookup(interp),
            torchapi.REFUSED,
            torchapi.torch_functions() | torchapi.DTYPE_NAMES | {"nn", "optim", "autograd"},
        )
    if name == "torch.nn":

        def nn_lookup(attr):
            if attr == "functional":
                return _module(interp, "torch.nn.functional", None)
            if attr == "init":
                return _module(interp, "torch.nn.init", None)
            return torchapi.nn_attribute(attr)

        return Namespace("nn", nn_lookup, {}, torchapi.NN_CLASSES | {"functional", "init"})
    if name == "torch.nn.functional":

        def f_lookup(attr):
            fn = torchapi.functional_attribute(attr)
            return None if fn is None else Builtin(attr, fn, "functional")

        return Namespace("F", f_lookup, {}, torchapi.F_FUNCTIONS)
    if name == "torch.nn.init":

        def init_lookup(attr):
            fn = getattr(nn.init, attr, None) if attr in torchapi.INIT_FUNCTIONS else None
            return None if fn is None else Builtin(attr, fn, "init")

        return Namespace("nn.init", init_lookup, {}, torchapi.INIT_FUNCTIONS)
    if name == "torch.optim":

        def optim_lookup(attr):
            return getattr(torch.optim, attr) if attr in torchapi.OPTIMIZERS else None

        return Namespace("optim", optim_lookup, {}, torchapi.OPTIMIZERS)
    if name == "torch.autograd":

        def autograd_lookup(attr):
            if attr == "grad":
                return Builtin("grad", interp.autograd_grad, "ours")
            if attr == "backward":
                return Builtin("backward", interp.autograd_backward, "ours")
            return None

        return Namespace(
            "torch.autograd",
            autograd_lookup,
            {"functional": "not available to programs"},
            {"grad", "backward"},
        )
    if name == "math":
        names = torchapi.math_names()

        def math_lookup(attr):
            if attr not in names:
                return None
            value = getattr(math, attr)
            return Builtin(attr, value, "python") if callable(value) else value

        return Namespace(
            "math",
            math_lookup,
            {n: "whole numbers this large take too long" for n in torchapi.MATH_REFUSED},
            names,
        )
    if name == "random":

        def random_lookup(attr):
            if attr not in torchapi.RANDOM_FUNCTIONS:
                return None
            fn = getattr(interp.random, attr)
            if attr in ("choice", "shuffle", "sample"):
                return Builtin(attr, fn, "python")
            return Builtin(attr, fn, "python")

        return Namespace("random", random_lookup, {}, torchapi.RANDOM_FUNCTIONS)
    if name == "micrograd":

        def mg_lookup(attr):
            if attr in ("engine", "nn"):
                return _module(interp, f"micrograd.{attr}", None)
            return None

        return Namespace("micrograd", mg_lookup, {}, {"engine", "nn"})
    if name == "micrograd.engine":
        return Namespace("micrograd.engine", micrograd.ENGINE.get, {}, micrograd.ENGINE)
    if name == "micrograd.nn":

        def mgnn_lookup(attr):
            if attr == "draw_dot":
                return Builtin("draw_dot", micrograd.draw_dot, "python")
            return micrograd.NN.get(attr) or micrograd.ENGINE.get(attr)

        return Namespace("micrograd.nn", mgnn_lookup, {}, set(micrograd.NN) | {"Value"})
    raise ExprError(f"`import {name}` is not allowed")


# ------------------------------------------------------------------------------------------ helpers


def _display(value) -> str:
    """How print shows a value (a tensor as torch prints it)."""
    if isinstance(value, str):
        return value
    return str(value)


def _is_display_worthy(call: ast.Call) -> bool:
    """A bare call line whose value a notebook would show (not print(...) or x.backward())."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name not in (
        "print",
        "backward",
        "step",
        "zero_grad",
        "zero_",
        "append",
        "extend",
        "seed",
        "manual_seed",
        "draw_dot",
        "requires_grad_",
        "retain_grad",
        "insert",
        "update",
        "shuffle",
        "fill_",
        "copy_",
        "uniform_",
        "normal_",
    )


def _is_grad_mode(manager) -> bool:
    return isinstance(
        manager, torch.no_grad | torch.enable_grad | torch.set_grad_enabled | torch.inference_mode
    )


def _index(index):
    """A tensor index as torch takes it (micrograd Values and lists pass through)."""
    return index


def _flat(args, kwargs) -> list:
    out = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    for a in args:
        walk(a)
    for v in kwargs.values():
        walk(v)
    return out


def _meta(value):
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, list):
        return [_meta(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _meta(v) for k, v in value.items()}
    return value


def _nested_count(data, cap: int) -> int:
    """How many numbers a nested list holds (stops counting at `cap`)."""
    count = 0
    stack = [data]
    while stack and count < cap:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        else:
            count += 1
    return count


def _base_init(cls: type, instance):
    """`super().__init__` of a program's class whose base is torch's: nn.Module takes no arguments."""

    def init(*args, **kwargs):
        if cls is nn.Module:
            return cls.__init__(instance)
        return cls.__init__(instance, *args, **kwargs)

    return init


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """The broadcast shape of two shapes, or None when they do not broadcast (torch's rule, in Python:
    torch.broadcast_shapes goes through its reference implementation, 0.25 ms a call)."""
    if a == b:
        return a
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    """The shape torch.matmul returns for inputs of these shapes (inner sizes already checked)."""
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(b) == 1:
        return a[:-1]
    if len(a) == 1:
        return b[:-2] + b[-1:]
    batch = tuple(torch.broadcast_shapes(a[:-2], b[:-2]))
    return batch + (a[-2], b[-1])


def _step_text(optimizer, params, before) -> str:
    """optimizer.step() written out: each parameter's change (the first few numbers)."""
    from explorer.core.numbers import fmt_number

    kind = type(optimizer).__name__
    lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
    parts = []
    for p, old in zip(params[:4], before[:4], strict=False):
        if p.numel() == 1:
            parts.append(f"{fmt_number(float(old))} → {fmt_number(float(p.detach()))}")
        else:
            delta = (p.detach() - old).abs().max()
            parts.append(f"{tuple(p.shape)} moved by up to {fmt_number(float(delta))}")
    more = f" and {len(params) - 4} more" if len(params) > 4 else ""
    return f"{kind}.step() (lr {lr}): " + "; ".join(parts) + more


def explain_error(exc: BaseException) -> str:
    """A torch or Python error as one line for a learner, with what autograd needed where it applies."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "target with class probabilities" in text:
        return (
            "a target shaped like the logits is read as class probabilities and must be floating-point "
            "(e.g. [[0.0, 1.0]]); for class indices give one whole number per row of logits, which need "
            "one score per class (e.g. cross_entropy([[2.0, 0.5]], [0]))"
        )
    if "modified by an inplace operation" in text:
        found = re.search(r"is at version (\d+); expected version (\d+)", text)
        versions = f" (saved at version {found.group(2)}, now at version {found.group(1)})" if found else ""
        return (
            "a tensor autograd saved for the backward pass was changed in place afterwards"
            f"{versions}: autograd needs the values it saved, so compute a new tensor instead "
            "(`x = x * 2`, not `x *= 2` or `x.add_(...)`)"
        )
    if (
        "backward through the graph a second time" in text
        or "saved tensors after they have already been freed" in text
    ):
        return (
            "backward already ran through this graph and freed what it saved: pass `retain_graph=True` "
            "to the first backward() to run it twice, or compute the forward pass again"
        )
    if "grad can be implicitly created only for scalar outputs" in text:
        return (
            "backward() of a tensor with more than one element needs `gradient=` (a tensor of its "
            "shape), or reduce it first with `.sum()` or `.mean()`"
        )
    if "leaf Variable that requires grad is being used in an in-place operation" in text:
        return (
            "this tensor is a leaf that requires grad, and changing it in place would break its graph: "
            "update it inside `with torch.no_grad():` (as an optimizer does), or work on `.data`"
        )
    if "does not require grad and does not have a grad_fn" in text:
        return (
            "this tensor does not require grad: nothing it depends on was created with "
            "`requires_grad=True`, so there is no graph to run backward through"
        )
    if "appears to not have been used in the graph" in text:
        return (
            "one of the inputs was not used to compute the output: pass `allow_unused=True` to get None "
            "for it"
        )
    if "Boolean value of Tensor with more than one value is ambiguous" in text:
        return "a tensor of many elements is not True or False: use `.all()`, `.any()` or compare one element"
    if "only one element tensors can be converted" in text or "cannot be converted to Scalar" in text:
        return "this needs a one-element tensor: index one element first, or reduce with `.sum()`"
    if "view size is not compatible" in text:
        return "`view` needs a contiguous tensor (this one is a transposed view): use reshape(...) instead"
    if "is invalid for input of size" in text:
        shape = text.split("'")[1] if "'" in text else "?"
        dims = shape.strip("[]").replace(" ", "").split(",")
        shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        return f"shape {shape} does not fit a tensor of {text.rsplit(' ', 1)[-1]} elements"
    if "Dimension out of range" in text:
        found = re.search(r"range of \[(-?\d+), (-?\d+)\], but got (-?\d+)", text)
        if found:
            low, high, got = found.groups()
            return f"dimension {got} does not exist here (the dimensions go from {low} to {high})"
        return f"a dimension is out of range: {text}"
    target = re.search(r"Target (-?\d+) is out of bounds", text)
    if target:
        return (f"target class {target.group(1)} does not exist: the classes go from 0 to the number of "
                "logits − 1")
    if "expected target dtype to be Long" in text or "expected scalar type Long" in text:
        return ("the target needs class indices as whole numbers (e.g. [0, 2]), or probabilities shaped "
                "like the logits")
    if "all elements of input should be between 0 and 1" in text:
        return ("binary cross-entropy needs probabilities between 0 and 1: apply sigmoid first, or use the "
                "with-logits loss")
    if (
        "not implemented for" in text
        or "could not infer output dtype" in text
        or "Float but found" in text
        or "found dtype Long" in text
    ):
        got = re.search(r"(Long|Int|Bool)", text)
        kind = {"Long": "int64", "Int": "int32", "Bool": "bool"}.get(got.group(1), "") if got else ""
        return (
            f"this needs floating-point tensors{f' (got {kind})' if kind else ''}: write numbers with a "
            "decimal point (1.0) or convert with x.float()"
        )
    if "must have the same dtype" in text:
        names = {
            "Double": "float64",
            "Float": "float32",
            "Half": "float16",
            "Long": "int64",
            "BFloat16": "bfloat16",
        }
        found = sorted({names.get(w, w) for w in re.findall(r"\b(Double|Float|Half|Long|BFloat16)\b", text)})
        return (
            f"the tensors have different dtypes ({' and '.join(found)}): convert one, e.g. x.float() or "
            "x.double()"
        )
    if "must match the size of tensor" in text or "mat1 and mat2 shapes cannot be multiplied" in text:
        return f"the shapes do not fit together: {text}"
    if (
        "expected scalar type" in text
        or "Found dtype" in text
        or "expected both vectors to have same dtype" in text
    ):
        return (
            f"the tensors have different dtypes ({text}): convert one, e.g. `x.float()`, or write numbers "
            "with a decimal point (1.0)"
        )
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, IndexError):
        return f"index out of range: {text}"
    if isinstance(exc, KeyError):
        return f"no such key: {text}"
    if isinstance(exc, TypeError) and "not callable" in text:
        return text
    if len(text) > 240:
        text = text[:237] + "..."
    return (
        f"{type(exc).__name__}: {text}" if isinstance(exc, TypeError | ValueError | AttributeError) else text
    )
