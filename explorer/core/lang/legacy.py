"""The functions of the app's first language, still callable by their plain names.

Programs written before the language became PyTorch (`w = param(2.2)`, `a = sigmoid(z)`, `L = bce(a, y)`,
`seed(0)`, `to(x, float64)`, `reshape(x, 2, 3)`) keep working: each op of the table in `ops.py` is a builtin
with the argument conversions it always had (a number where a tensor is wanted becomes a tensor, a float
target of a loss takes the prediction's dtype). A program's own variables and `def`s shadow these names,
as in Python.
"""

from __future__ import annotations

import torch

from explorer.core.lang.ops import DTYPES, OPS, OpSpec
from explorer.core.lang.syntax import ExprError

# names that are also Python builtins: a call with one tensor argument means the op, anything else Python's
SHARED_WITH_PYTHON = frozenset({"sum", "max", "min", "abs"})


def is_formula(tree) -> bool:
    """True for a program in the first language's style: no imports, definitions, loops, conditions or
    text, and only its functions called by name. In such a program a list literal is a tensor, as it
    always was there (`W @ [[1.0], [2.0]]`); elsewhere lists are Python lists. (Remembered on the tree.)"""
    known = getattr(tree, "is_formula", None)
    if known is None:
        known = tree.is_formula = _is_formula(tree)
    return known


def _is_formula(tree) -> bool:
    import ast

    for node in ast.walk(tree):
        if isinstance(
            node,
            ast.Import
            | ast.ImportFrom
            | ast.FunctionDef
            | ast.ClassDef
            | ast.For
            | ast.While
            | ast.If
            | ast.With
            | ast.JoinedStr,
        ):
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in OPS and node.func.id not in SHARED_WITH_PYTHON:
                return False
    return True


def builtins(interp) -> dict[str, object]:
    """{name: Builtin} of every legacy function and dtype name."""
    from explorer.core.lang.interp import Builtin

    table: dict[str, object] = {}
    for name, spec in OPS.items():
        if spec.kind == "operator" or name == "T" or name in SHARED_WITH_PYTHON:
            continue
        table[name] = Builtin(name, _caller(interp, name), "ours")
    table.update(DTYPES)
    return table


def _caller(interp, name: str):
    def run(node, *args, **kwargs):
        return call(interp, name, list(args), kwargs, node)

    run.__name__ = name
    return run


def call(interp, name: str, args: list, kwargs: dict, node):
    """Run the legacy op `name` with its conversions and checks."""
    spec = OPS[name]
    if name == "param":
        return _param(interp, args, kwargs, node)
    if name == "seed":
        n = _int(interp, args[0] if args else kwargs.get("n"), node, "seed")
        if n < 0:
            interp.fail(node, "seed(n) needs a whole number ≥ 0")
        with interp.hooks.paused():
            torch.manual_seed(n)
        return None
    bound = _bind(interp, spec, args, kwargs, node)
    if spec.name == "to" and interp.dtype is not None and isinstance(bound[1], torch.dtype):
        if bound[1].is_floating_point:
            bound[1] = interp.dtype  # a float64 run keeps its precision through casts
    if spec.kind == "constructor":
        interp.check_sizes(bound if spec.name != "eye" else bound[:1], node, spec.name)
    if spec.name in ("matmul", "linear"):
        _check_matrix(interp, spec.name, bound, node)
        interp.check_product(spec.name, bound, node)
    if spec.needs_rng:
        result = spec.fn(torch.default_generator, *bound)
    else:
        result = spec.fn(*bound)
    if spec.kind == "constructor" and interp.dtype is not None and result.is_floating_point():
        result = result.to(interp.dtype)
    return interp.account(result, node)


def literal(interp, node, scope) -> torch.Tensor:
    """A list literal of a formula program: a tensor (int64 for whole numbers, float32 for decimals)."""
    import ast

    def nested(n):
        if isinstance(n, ast.List):
            return [nested(e) for e in n.elts]
        v = interp.evaluate(n, scope)
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            return v.item()
        if isinstance(v, bool) or not isinstance(v, int | float):
            interp.fail(n, "a tensor literal holds plain numbers, e.g. [[1.0, 2.0], [3.0, 4.0]]")
        return v

    data = nested(node)
    interp.check_elements(_count(data), node)
    try:
        t = torch.tensor(data)
    except (RuntimeError, OverflowError, ValueError, TypeError) as exc:
        if "overflow" in str(exc).lower() or isinstance(exc, OverflowError):
            interp.fail(node, "a number in this tensor literal is too large for its dtype")
        interp.fail(node, "the rows of a tensor literal must all have the same length")
    if interp.dtype is not None and t.is_floating_point():
        t = t.to(interp.dtype)
    return interp.account(t, node)


def _count(data) -> int:
    return sum(_count(d) for d in data) if isinstance(data, list) else 1


def _check_matrix(interp, name: str, args: list, node) -> None:
    a, b = args[0], args[1]
    if a.dim() == 0 or b.dim() == 0:
        interp.fail(
            node,
            f"`{name}` needs tensors with at least one dimension, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}: use `*` for scalars",
        )
    if name == "linear" and a.shape[-1] != b.shape[-1]:
        interp.fail(
            node,
            f"linear needs x's last size to equal W's last size: x {tuple(a.shape)}, "
            f"W {tuple(b.shape)} (W is shaped (out, in))",
        )
    if a.is_floating_point() and b.is_floating_point() and a.dtype != b.dtype:
        names = " and ".join(sorted(str(d).removeprefix("torch.") for d in (a.dtype, b.dtype)))
        interp.fail(node, f"`{name}` needs tensors of one dtype, got {names}: convert with to(x, float32)")


def _param(interp, args, kwargs, node) -> torch.Tensor:
    if len(args) + len(kwargs) != 1:
        interp.fail(node, "param(value) takes one value, e.g. `w = param(2.2)`")
    value = args[0] if args else next(iter(kwargs.values()))
    with torch.no_grad(), interp.hooks.paused():
        base = _tensor(interp, value, node)
    dtype = interp.dtype or (base.dtype if base.is_floating_point() else torch.float32)
    # A fresh leaf filled in place under no_grad: the tracer sees no op, so the param is one leaf
    leaf = torch.empty(base.shape, dtype=dtype, requires_grad=True)
    with torch.no_grad(), interp.hooks.paused():
        leaf.copy_(base)
    return interp.register_leaf(leaf)


def _tensor(interp, value, node) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | list | tuple):
        interp.fail(node, "a value must be a number or a tensor")
    try:
        t = torch.tensor(value)
    except (RuntimeError, OverflowError, ValueError, TypeError):
        interp.fail(node, "this does not fit in a tensor (rows of equal length, numbers that fit)")
    if interp.dtype is not None and t.is_floating_point():
        t = t.to(interp.dtype)
    return interp.account(t, node)


def _bind(interp, spec: OpSpec, positional: list, keywords: dict, node) -> list:
    out = []
    rest = list(positional)
    keywords = dict(keywords)
    for arg in spec.args:
        if arg.variadic:
            out.extend(_shape(interp, rest, node, spec))
            rest = []
            break
        if rest:
            value, given = rest.pop(0), True
        elif arg.name in keywords:
            value, given = keywords.pop(arg.name), True
        elif arg.required:
            interp.fail(node, f"`{spec.name}` is missing `{arg.name}`: {spec.signature()}")
        else:
            value, given = arg.default, False
        if given and not (value is None and arg.default is None):
            value = _convert(interp, value, arg, node, spec)
        out.append(value)
    if rest:
        interp.fail(node, f"`{spec.name}` takes fewer arguments: {spec.signature()}")
    if keywords:
        key = next(iter(keywords))
        interp.fail(node, f"`{spec.name}` has no argument `{key}`: {spec.signature()}")
    return out


def _convert(interp, value, arg, node, spec: OpSpec):
    if arg.kind == "tensor":
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, int | float | list) and not isinstance(value, bool):
            return _tensor(interp, value, node)
        interp.fail(node, f"`{spec.name}` needs a tensor or number for `{arg.name}`")
    if arg.kind == "int":
        return _int(interp, value, node, f"{spec.name}'s `{arg.name}`")
    if arg.kind == "float":
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        interp.fail(node, f"`{spec.name}` needs a number for `{arg.name}`")
    if arg.kind == "dtype":
        if isinstance(value, torch.dtype):
            return value
        interp.fail(node, f"`{spec.name}` needs a dtype ({' '.join(DTYPES)})")
    return value


def _int(interp, value, node, what: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        interp.fail(node, f"{what} needs a whole number")
    if abs(value) > 2**62:
        interp.fail(node, f"{what}: {value} is too large")
    return value


def _shape(interp, values: list, node, spec: OpSpec) -> list[int]:
    if len(values) == 1 and isinstance(values[0], tuple | list | torch.Size):
        values = list(values[0])
    if len(values) > 32:
        interp.fail(node, f"`{spec.name}`: too many dimensions ({len(values)})")
    if not values and spec.name in ("reshape", "view"):
        interp.fail(node, f"`{spec.name}` needs the new shape, e.g. {spec.name}(x, 2, 3)")
    return [_int(interp, v, node, f"`{spec.name}` sizes") for v in values]


__all__ = ["ExprError", "SHARED_WITH_PYTHON", "builtins", "call"]
