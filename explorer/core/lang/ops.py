"""The one table of what the expression language may call.

Every function, method, operator and constructor of `explorer.core.lang.program` is an `OpSpec` here: the
torch callable that runs it, its arguments, a display label, the local derivative as text (shown by
the app next to the chain rule) and, where it is simple, a function computing that local derivative
numerically so the app can put "manual formula" beside autograd and finite differences.

Nothing outside this table can be called from a program.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F

# Largest number of elements one tensor of a program may hold; checked before allocating.
MAX_ELEMENTS = 10**6

REQUIRED = object()  # marks an argument without a default

DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "int64")


class _LateModule:
    """Stands in for torch (or torch.nn.functional) in this module until an op first computes: the table
    is built, and read by the editor, before torch is imported. The first attribute read imports the
    module and puts it in this module's globals in place of the stand-in."""

    def __init__(self, module: str, alias: str) -> None:
        self._module, self._alias = module, alias

    def __getattr__(self, name: str):
        module = importlib.import_module(self._module)
        globals()[self._alias] = module
        return getattr(module, name)


if not TYPE_CHECKING:
    torch = _LateModule("torch", "torch")
    F = _LateModule("torch.nn.functional", "F")


def _late(alias: str, name: str) -> Callable:
    """The function `name` of torch (alias "torch") or of torch.nn.functional ("F"), found when called."""

    def call(*args, **kwargs):
        return getattr(globals()[alias], name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def __getattr__(name: str):
    """`DTYPES` (name -> torch.dtype) is made when first read, so that importing the table needs no torch."""
    if name == "DTYPES":
        dtypes = {n: getattr(torch, n) for n in DTYPE_NAMES}
        globals()["DTYPES"] = dtypes
        return dtypes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Arg:
    """One argument of an op: its name, what kind of value it takes, its default, whether it is `*args`.

    Kinds: "tensor" (a tensor or a number), "int", "float", "shape" (ints or one tuple of ints),
    "dtype".
    """

    name: str
    kind: str
    default: object = REQUIRED
    variadic: bool = False

    @property
    def required(self) -> bool:
        """True when the caller must pass this argument."""
        return self.default is REQUIRED and not self.variadic


@dataclass(frozen=True)
class OpSpec:
    """An allowed op: how it runs (`fn`), how it is shown (`label`) and its local derivative.

    `manual`, when present, takes the op's input tensors (numbers already made tensors) and returns
    the elementwise local derivative with respect to each input (a list, None where there is none).
    `aliases` are the torch names (function or grad_fn) under which the tracer may record this op.
    """

    name: str
    fn: Callable
    label: str
    args: tuple[Arg, ...]
    local_derivative: str
    doc: str
    kind: str = "function"  # function | constructor | loss | operator | method
    manual: Callable | None = None
    aliases: tuple[str, ...] = ()
    needs_rng: bool = False  # fn takes a torch.Generator as its first argument
    elementwise: bool = False
    # per input, how the gradient sent to it is written: "{0}", "{1}" are the inputs' names, "{up}" the
    # upstream gradient, "{/n}" the mean's divisor; without "{up}" it reads "upstream × <template>"
    chain: tuple[str, ...] = ()
    # for ops whose local derivative is not elementwise: (upstream, *inputs) -> the gradient each input
    # receives by the formula (None where it has none), computed by hand to compare with autograd
    manual_vjp: Callable | None = None
    method: str | None = None  # `x.<method>(...)` runs this op with x as its first argument
    # how the op reads as plain torch Python: a str.format template over the arguments' names ("{x}",
    # "{a} @ {b}"), each argument already written as an atom (parenthesised when it is an expression);
    # a variadic argument is its values joined by ", "; "⟦...⟧" is left out when its argument is None
    torch_code: str = ""
    # why its backward keeps the tensors it saves, in one line (the inspector's memory section); empty
    # for ops that keep nothing. What is kept is never listed here: the tracer reads it from torch.
    saved_reason: str = ""

    @property
    def arity(self) -> tuple[int, int | None]:
        """(fewest, most) positional arguments; most is None for `*shape` ops."""
        low = sum(1 for a in self.args if a.required)
        high = None if any(a.variadic for a in self.args) else len(self.args)
        return low, high

    def signature(self) -> str:
        """How a user writes a call, e.g. `softmax(x, dim=-1)`."""
        parts = []
        for a in self.args:
            if a.variadic:
                parts.append(f"*{a.name}")
            elif a.required:
                parts.append(a.name)
            else:
                parts.append(f"{a.name}={a.default}")
        return f"{self.name}({', '.join(parts)})"


def _args(*specs: str) -> tuple[Arg, ...]:
    """Compact argument lists: "x:tensor", "dim:int=-1", "*shape:shape", "b:tensor=None"."""
    out = []
    for spec in specs:
        variadic = spec.startswith("*")
        spec = spec.lstrip("*")
        name, _, rest = spec.partition(":")
        kind, _, default_text = rest.partition("=")
        default: object = REQUIRED
        if default_text:
            default = None if default_text == "None" else type_of(kind)(default_text)
        out.append(Arg(name, kind, default, variadic))
    return tuple(out)


def type_of(kind: str) -> Callable:
    """The Python type a default of this kind is written in."""
    return {"int": int, "float": float}.get(kind, str)


# ---------------------------------------------------------------- local derivatives, numerically


def _ones(t: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(t)


def _d_sigmoid(z):
    s = torch.sigmoid(z)
    return [s * (1 - s)]


def _d_gelu(z):
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return [cdf + z * pdf]


def _d_pow(a, b):
    # ln a only exists for a > 0; where it does not, torch's own rule gives 0 for the exponent too
    log_a = torch.where(a > 0, torch.log(a.clamp_min(torch.finfo(a.dtype).tiny)), torch.zeros_like(a))
    return [b * a ** (b - 1), a**b * log_a]


def _d_bce(p, y):
    return [(p - y) / (p * (1 - p)) / p.numel(), None]


def _d_bce_logits(z, y):
    return [(torch.sigmoid(z) - y) / z.numel(), None]


def _d_mse(p, y):
    return [2 * (p - y) / p.numel(), None]


# ---------------------------------------------------------------- runners with friendlier defaults


def _as_float_tensor(value, like: torch.Tensor) -> torch.Tensor:
    """A target such as `1.0` or an int tensor, as a tensor of `like`'s dtype and shape."""
    t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    if t.dtype != like.dtype:
        t = t.to(like.dtype)
    if t.shape != like.shape:
        try:
            torch.broadcast_shapes(t.shape, like.shape)
        except RuntimeError:
            raise ValueError(f"the target's shape {tuple(t.shape)} does not match the prediction's shape "
                             f"{tuple(like.shape)}") from None
        t = t.expand_as(like)
    return t


def _check_numel(shape: tuple[int, ...], what: str) -> None:
    n = math.prod(shape) if shape else 1
    if n > MAX_ELEMENTS:
        raise ValueError(f"{what} would hold {n:,} elements; the limit is {MAX_ELEMENTS:,}")


def _shape_tuple(shape) -> tuple[int, ...]:
    for s in shape:
        if s < 0:
            raise ValueError(f"a size cannot be negative (got {s})")
    return tuple(shape)


def _randn(gen, *shape):
    shape = _shape_tuple(shape)
    _check_numel(shape, f"randn{shape}")
    return torch.randn(shape, generator=gen)


def _rand(gen, *shape):
    shape = _shape_tuple(shape)
    _check_numel(shape, f"rand{shape}")
    return torch.rand(shape, generator=gen)


def _zeros(*shape):
    shape = _shape_tuple(shape)
    _check_numel(shape, f"zeros{shape}")
    return torch.zeros(shape)


def _ones_fn(*shape):
    shape = _shape_tuple(shape)
    _check_numel(shape, f"ones{shape}")
    return torch.ones(shape)


def _eye(n):
    _shape_tuple((n,))
    _check_numel((n, n), f"eye({n})")
    return torch.eye(n)


def _arange(n):
    _shape_tuple((n,))
    _check_numel((n,), f"arange({n})")
    return torch.arange(n)


def _dropout(gen, x, p=0.5):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be between 0 and 1, got {p}")
    # the program's own generator decides the mask, so every run (and finite differences) drops
    # the same elements
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return F.dropout(x, p, training=True)


def _sum(x, dim=None):
    return x.sum() if dim is None else x.sum(dim)


def _mean(x, dim=None):
    return x.mean() if dim is None else x.mean(dim)


def _transpose_T(x):
    if x.dim() > 2:
        shape = tuple(x.shape)
        raise ValueError(f"`.T` needs at most 2 dimensions, got shape {shape}: use transpose(x, d0, d1)")
    if x.dim() < 2:
        # torch warns that .T on 0-D/1-D tensors is deprecated; here it is simply the same tensor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return x.T
    return x.T


def _squeeze(x, dim=None):
    return x.squeeze() if dim is None else x.squeeze(dim)


def _layer_norm(x, weight=None, bias=None):
    return F.layer_norm(x, x.shape[-1:], weight, bias)


def _bce(p, y):
    return F.binary_cross_entropy(p, _as_float_tensor(y, p))


def _bce_logits(z, y):
    return F.binary_cross_entropy_with_logits(z, _as_float_tensor(y, z))


def _mse(p, y):
    return F.mse_loss(p, _as_float_tensor(y, p))


def _class_target(target):
    return target if isinstance(target, torch.Tensor) else torch.tensor(target)


def _cross_entropy(logits, target):
    return F.cross_entropy(logits, _class_target(target))


def _nll(logp, target):
    return F.nll_loss(logp, _class_target(target))


# Each rule takes the upstream gradient and the op's inputs (tensors, float64), plus `out` (the op's
# output) and `settings` (the whole-number settings of the call as recorded, e.g. (1,) for sum(x, 1)).


def _vjp_matmul(up, a, b, **_):
    if a.dim() == 1 and b.dim() == 1:
        return [up * b, up * a]
    if a.dim() == 2 and b.dim() == 1:
        return [torch.outer(up, b), a.T @ up]
    if a.dim() == 1 and b.dim() == 2:
        return [b @ up, torch.outer(a, up)]
    if a.dim() == 2 and b.dim() == 2:
        return [up @ b.T, a.T @ up]
    return [None, None]


def _vjp_linear(up, x, W, b=None, **_):
    if x.dim() != 2 or W.dim() != 2:
        return [None, None, None]
    return [up @ W, up.T @ x, up.sum(0)]


def _vjp_reduction(divide: bool):
    def vjp(up, x, settings=(), **_):
        if not settings:  # all elements
            return [up.reshape(()).expand(x.shape) / (x.numel() if divide else 1)]
        dim = settings[0] % max(x.dim(), 1)
        kept = up if up.dim() == x.dim() else up.unsqueeze(dim)  # keepdim=True leaves the dimension in place
        return [kept.expand(x.shape) / (x.shape[dim] if divide else 1)]

    return vjp


def _vjp_extreme(up, x, out=None, **_):
    if out is None:
        return [None]
    winners = (x == out).to(x.dtype)  # ties share the gradient, as torch does
    return [up * winners / winners.sum()]


def _vjp_same_elements(up, x, **_):
    return [up.reshape(x.shape)] if up.numel() == x.numel() else [None]


def _vjp_transpose(up, x, settings=(), **_):
    if x.dim() < 2:
        return [up.reshape(x.shape)]
    d0, d1 = settings[:2] if len(settings) >= 2 else (0, 1)
    return [up.transpose(d0, d1)]


def _vjp_cross_entropy(up, z, target, **_):
    if target.is_floating_point() or z.dim() > 2:
        return [None, None]
    batch = z.shape[0] if z.dim() == 2 else 1
    onehot = F.one_hot(target.long(), z.shape[-1]).to(z.dtype)
    return [up * (torch.softmax(z, -1) - onehot) / batch, None]


def _vjp_nll(up, logp, target, **_):
    if logp.dim() > 2:
        return [None, None]
    batch = logp.shape[0] if logp.dim() == 2 else 1
    return [-up * F.one_hot(target.long(), logp.shape[-1]).to(logp.dtype) / batch, None]


def _vjp_softmax(log: bool):
    def vjp(up, z, out=None, settings=(), **_):
        # the dimension from the recorded call, else the one that reproduces the output
        dims = [settings[0] % z.dim()] if settings and z.dim() else range(z.dim())
        for dim in dims:
            s = torch.softmax(z, dim)
            if out is None or torch.allclose(torch.log(s) if log else s, out, rtol=1e-4, atol=1e-6):
                if log:
                    return [up - s * up.sum(dim, keepdim=True)]
                return [s * (up - (up * s).sum(dim, keepdim=True))]
        return [None]

    return vjp


# ---------------------------------------------------------------- the table

_X = _args("x:tensor")
_AB = _args("a:tensor", "b:tensor")


def _unary(name, fn, label, deriv, doc, manual=None, aliases=(), **fields):
    return OpSpec(name, fn, label, _X, deriv, doc, manual=manual, aliases=aliases, elementwise=True, **fields)


_SPECS: list[OpSpec] = [
    # elementwise functions
    _unary(
        "sigmoid",
        _late("torch", "sigmoid"),
        "σ",
        "σ(z)(1 − σ(z))",
        "Sigmoid σ(z) = 1 / (1 + e^−z): squashes any number into (0, 1).",
        _d_sigmoid,
        chain=("σ({0})(1 − σ({0}))",),
        saved_reason="sigmoid keeps its output a: the backward needs a(1 − a)",
        torch_code="torch.sigmoid({x})",
    ),
    _unary(
        "tanh",
        _late("torch", "tanh"),
        "tanh",
        "1 − tanh²(z)",
        "Hyperbolic tangent: squashes into (−1, 1), steepest at 0.",
        lambda z: [1 - torch.tanh(z) ** 2],
        chain=("(1 − tanh²({0}))",),
        saved_reason="tanh keeps its output t: the backward needs 1 − t²",
        torch_code="torch.tanh({x})",
    ),
    _unary(
        "relu",
        _late("torch", "relu"),
        "ReLU",
        "1 if z > 0 else 0",
        "ReLU max(0, z): passes positives, zeroes negatives; its gradient is 0 or 1.",
        lambda z: [(z > 0).to(z.dtype)],
        chain=("[{0} > 0]",),
        saved_reason="ReLU keeps its output: the gradient passes where it is positive and is 0 elsewhere",
        torch_code="torch.relu({x})",
    ),
    _unary(
        "gelu", _late("F", "gelu"), "GELU", "Φ(z) + z·φ(z)",
        "GELU z·Φ(z): a smooth ReLU used in transformers.", _d_gelu,
        chain=("(Φ({0}) + {0}·φ({0}))",),
        saved_reason="GELU keeps its input z: the backward needs Φ(z) + z·φ(z)",
        torch_code="F.gelu({x})",
    ),
    _unary(
        "exp", _late("torch", "exp"), "exp", "exp(z)", "e to the power z; its own derivative.",
        lambda z: [torch.exp(z)],
        chain=("exp({0})",),
        saved_reason="exp keeps its output: the derivative of eᶻ is eᶻ itself",
        torch_code="torch.exp({x})",
    ),
    _unary("log", _late("torch", "log"), "log", "1 / z", "Natural logarithm (defined for z > 0).",
           lambda z: [1 / z],
           chain=("1/{0}",),
           saved_reason="log keeps its input z: the backward divides by z", torch_code="torch.log({x})"),
    _unary(
        "sqrt",
        _late("torch", "sqrt"),
        "√",
        "1 / (2√z)",
        "Square root (defined for z ≥ 0).",
        lambda z: [0.5 / torch.sqrt(z)],
        chain=("1/(2√{0})",),
        saved_reason="sqrt keeps its output √z: the backward divides by 2√z",
        torch_code="torch.sqrt({x})",
    ),
    _unary(
        "abs",
        _late("torch", "abs"),
        "|·|",
        "sign(z)",
        "Absolute value; its derivative is the sign.",
        lambda z: [torch.sign(z)],
        chain=("sign({0})",),
        saved_reason="abs keeps its input: the backward needs its sign",
        torch_code="torch.abs({x})",
    ),
    _unary("sin", _late("torch", "sin"), "sin", "cos(z)", "Sine.", lambda z: [torch.cos(z)],
           chain=("cos({0})",),
           saved_reason="sin keeps its input z: the backward needs cos(z)", torch_code="torch.sin({x})"),
    _unary("cos", _late("torch", "cos"), "cos", "−sin(z)", "Cosine.", lambda z: [-torch.sin(z)],
           chain=("(−sin({0}))",),
           saved_reason="cos keeps its input z: the backward needs −sin(z)", torch_code="torch.cos({x})"),
    # along a dimension
    OpSpec(
        "softmax",
        lambda x, dim=-1: torch.softmax(x, dim),
        "softmax",
        _args("x:tensor", "dim:int=-1"),
        "∂sᵢ/∂zⱼ = sᵢ(δᵢⱼ − sⱼ)",
        "Softmax: exponentiates and normalises along `dim` so the values sum to 1.",
        chain=("s ⊙ ({up} − Σ {up}·s), s = softmax({0})",),
        manual_vjp=_vjp_softmax(log=False),
        saved_reason="softmax keeps its output s: the backward needs s ⊙ (g − Σ g·s)",
        torch_code="torch.softmax({x}, dim={dim})",
    ),
    OpSpec(
        "log_softmax",
        lambda x, dim=-1: torch.log_softmax(x, dim),
        "log softmax",
        _args("x:tensor", "dim:int=-1"),
        "∂/∂zⱼ log sᵢ = δᵢⱼ − sⱼ",
        "Log of the softmax, computed stably; pairs with nll() to make cross-entropy.",
        chain=("{up} − softmax({0})·Σ {up}",),
        manual_vjp=_vjp_softmax(log=True),
        saved_reason="log softmax keeps its output: the backward needs the softmax, exp of it",
        torch_code="torch.log_softmax({x}, dim={dim})",
    ),
    OpSpec(
        "sum",
        _sum,
        "Σ",
        _args("x:tensor", "dim:int=None"),
        "1 for every element",
        "Sum of all elements (or along `dim`): the gradient copies the upstream to every element.",
        chain=("1",),
        manual_vjp=_vjp_reduction(divide=False),
        method="sum",
        torch_code="{x}.sum(⟦{dim}⟧)",
    ),
    OpSpec(
        "mean",
        _mean,
        "mean",
        _args("x:tensor", "dim:int=None"),
        "1 / n for every element",
        "Mean of all elements (or along `dim`): the gradient is the upstream divided by n.",
        chain=("1/n",),
        manual_vjp=_vjp_reduction(divide=True),
        method="mean",
        torch_code="{x}.mean(⟦{dim}⟧)",
    ),
    OpSpec(
        "max",
        lambda x: torch.max(x),
        "max",
        _X,
        "1 at the largest element, 0 elsewhere",
        "Largest element: only that element receives gradient.",
        chain=("[{0} is the largest]",),
        manual_vjp=_vjp_extreme,
        saved_reason="max keeps its input and the maximum: the gradient goes to the elements equal to it",
        torch_code="torch.max({x})",
    ),
    OpSpec(
        "min",
        lambda x: torch.min(x),
        "min",
        _X,
        "1 at the smallest element, 0 elsewhere",
        "Smallest element: only that element receives gradient.",
        chain=("[{0} is the smallest]",),
        manual_vjp=_vjp_extreme,
        saved_reason="min keeps its input and the minimum: the gradient goes to the elements equal to it",
        torch_code="torch.min({x})",
    ),
    # linear algebra and shapes
    OpSpec(
        "matmul",
        _late("torch", "matmul"),
        "@",
        _AB,
        "∂/∂A = upstream @ Bᵀ, ∂/∂B = Aᵀ @ upstream",
        "Matrix product A @ B: inner sizes must match ((n, k) @ (k, m) → (n, m)).",
        aliases=("mm", "bmm", "mv", "dot"),
        chain=("{up} @ {1}ᵀ", "{0}ᵀ @ {up}"),
        manual_vjp=_vjp_matmul,
        method="matmul",
        saved_reason="matmul keeps A and B: the gradient of each needs the other (dA = g·Bᵀ, dB = Aᵀ·g)",
        torch_code="{a} @ {b}",
    ),
    OpSpec(
        "transpose",
        lambda x, d0, d1: x.transpose(d0, d1),
        "transpose",
        _args("x:tensor", "d0:int", "d1:int"),
        "the upstream transposed back",
        "Swaps two dimensions: a view sharing the same memory (no copy), usually not contiguous.",
        chain=("({up})ᵀ",),
        manual_vjp=_vjp_transpose,
        method="transpose",
        torch_code="{x}.transpose({d0}, {d1})",
    ),
    OpSpec(
        "T",
        _transpose_T,
        "ᵀ",
        _X,
        "the upstream transposed back",
        "Transpose of a matrix (a view, not contiguous).",
        kind="method",
        aliases=("t", "numpy_T", "permute"),
        chain=("({up})ᵀ",),
        manual_vjp=lambda up, x, **_: [up.T],
        torch_code="{x}.T",
    ),
    OpSpec(
        "reshape",
        lambda x, *shape: x.reshape(shape),
        "reshape",
        _args("x:tensor", "*shape:shape"),
        "the upstream reshaped back",
        "Same elements, new shape (one size may be −1); copies only when it must.",
        aliases=("_reshape_alias", "unsafe_view"),
        chain=("{up} reshaped back",),
        manual_vjp=_vjp_same_elements,
        method="reshape",
        torch_code="{x}.reshape({shape})",
    ),
    OpSpec(
        "view",
        lambda x, *shape: x.view(shape),
        "view",
        _args("x:tensor", "*shape:shape"),
        "the upstream reshaped back",
        "Same memory seen with a new shape: needs a contiguous tensor (else use reshape).",
        chain=("{up} reshaped back",),
        manual_vjp=_vjp_same_elements,
        method="view",
        torch_code="{x}.view({shape})",
    ),
    OpSpec(
        "flatten",
        _late("torch", "flatten"),
        "flatten",
        _X,
        "the upstream reshaped back",
        "All elements in one dimension.",
        chain=("{up} reshaped back",),
        manual_vjp=_vjp_same_elements,
        torch_code="torch.flatten({x})",
    ),
    OpSpec(
        "unsqueeze",
        _late("torch", "unsqueeze"),
        "unsqueeze",
        _args("x:tensor", "dim:int"),
        "the upstream squeezed back",
        "Inserts a dimension of size 1 at `dim`.",
        chain=("{up} squeezed back",),
        manual_vjp=_vjp_same_elements,
        torch_code="{x}.unsqueeze({dim})",
    ),
    OpSpec(
        "squeeze",
        _squeeze,
        "squeeze",
        _args("x:tensor", "dim:int=None"),
        "the upstream unsqueezed back",
        "Removes dimensions of size 1.",
        chain=("{up} unsqueezed back",),
        manual_vjp=_vjp_same_elements,
        torch_code="{x}.squeeze(⟦{dim}⟧)",
    ),
    OpSpec(
        "to",
        lambda x, dtype: x.to(dtype),
        "to",
        _args("x:tensor", "dtype:dtype"),
        "1 (the upstream converted back to the input's dtype)",
        "Converts to another dtype (float16 bfloat16 float32 float64 int64); ints carry no gradient.",
        aliases=("_to_copy",),
        chain=("{up} converted back",),
        manual_vjp=_vjp_same_elements,
        method="to",
        torch_code="{x}.to({dtype})",
    ),
    OpSpec(
        "linear",
        _late("F", "linear"),
        "linear",
        _args("x:tensor", "W:tensor", "b:tensor=None"),
        "∂/∂x = upstream @ W, ∂/∂W = upstreamᵀ @ x, ∂/∂b = Σ upstream",
        "A fully connected layer: x @ Wᵀ + b, W shaped (out, in).",
        aliases=("addmm",),
        chain=("{up} @ {1}", "{up}ᵀ @ {0}", "Σ_rows {up}"),
        manual_vjp=_vjp_linear,
        saved_reason="linear keeps its input x and weight W: dW = gᵀ·x needs x, dx = g·W needs W",
        torch_code="F.linear({x}, {W}, {b})",
    ),
    OpSpec(
        "layer_norm",
        _layer_norm,
        "LayerNorm",
        _args("x:tensor", "weight:tensor=None", "bias:tensor=None"),
        "(1/σ)(I − 1/n − x̂x̂ᵀ/n)",
        "Normalises the last dimension to mean 0 and variance 1 (then scales and shifts).",
        chain=("(1/σ)(I − 1/n − x̂x̂ᵀ/n) applied to {up}", "{up} ⊙ x̂", "{up}"),
        saved_reason=(
            "layer_norm keeps its input, weight, bias and each row's mean and 1/σ (result1, "
            "result2): the backward normalises again with them"
        ),
                torch_code="F.layer_norm({x}, {x}.shape[-1:], {weight}, {bias})",
    ),
    OpSpec(
        "dropout",
        _dropout,
        "dropout",
        _args("x:tensor", "p:float=0.5"),
        "mask / (1 − p)",
        "Zeroes each element with probability p and scales the rest by 1/(1 − p) (training mode).",
        needs_rng=True,
        aliases=("native_dropout",),
        chain=("mask/(1 − p)",),
        saved_reason=(
            "dropout keeps its mask: the gradient passes only where the value was kept, "
            "times 1/(1 − p)"
        ),
                torch_code="F.dropout({x}, {p})",
    ),
    # losses
    OpSpec(
        "bce",
        _bce,
        "BCE",
        _args("p:tensor", "y:tensor"),
        "(p − y) / (p(1 − p)) ÷ n",
        "Binary cross-entropy −[y·log p + (1 − y)·log(1 − p)] for a probability p in (0, 1).",
        kind="loss",
        manual=_d_bce,
        aliases=("binary_cross_entropy",),
        chain=("({0} − {1}) / ({0}(1 − {0})){/n}",),
        saved_reason="bce keeps the prediction p and the target y: the backward needs (p − y) / (p(1 − p))",
        torch_code="F.binary_cross_entropy({p}, {y})",
    ),
    OpSpec(
        "bce_with_logits",
        _bce_logits,
        "BCE (logits)",
        _args("z:tensor", "y:tensor"),
        "(σ(z) − y) ÷ n",
        "Sigmoid and binary cross-entropy in one numerically stable step.",
        kind="loss",
        manual=_d_bce_logits,
        aliases=("binary_cross_entropy_with_logits",),
        chain=("(σ({0}) − {1}){/n}",),
        saved_reason="bce_with_logits keeps the logits z and the target y: the backward needs σ(z) − y",
        torch_code="F.binary_cross_entropy_with_logits({z}, {y})",
    ),
    OpSpec(
        "mse",
        _mse,
        "MSE",
        _args("p:tensor", "y:tensor"),
        "2(p − y) ÷ n",
        "Mean squared error: the average of (p − y)².",
        kind="loss",
        manual=_d_mse,
        aliases=("mse_loss",),
        chain=("2({0} − {1}){/n}",),
        saved_reason="mse keeps the prediction p and the target y: the backward needs 2(p − y)/n",
        torch_code="F.mse_loss({p}, {y})",
    ),
    OpSpec(
        "cross_entropy",
        _cross_entropy,
        "cross-entropy",
        _args("logits:tensor", "target:tensor"),
        "softmax(z) − onehot(y) (÷ batch size)",
        "Cross-entropy of raw scores against class indices: log_softmax then nll.",
        kind="loss",
        aliases=("cross_entropy_loss",),
        chain=("(softmax({0}) − onehot({1})){/n}",),
        manual_vjp=_vjp_cross_entropy,
        saved_reason=(
            "cross_entropy keeps the log-softmax of the logits and the targets: the backward needs "
            "softmax − one-hot"
        ),
                torch_code="F.cross_entropy({logits}, {target})",
    ),
    OpSpec(
        "nll",
        _nll,
        "NLL",
        _args("logp:tensor", "target:tensor"),
        "−1 at the target class (÷ batch size)",
        "Negative log-likelihood: minus the log-probability of the target class.",
        kind="loss",
        aliases=("nll_loss", "nll_loss_nd"),
        chain=("(−onehot({1})){/n}",),
        manual_vjp=_vjp_nll,
        saved_reason="nll keeps its input, the targets and their count: the gradient is −1/n at each target",
        torch_code="F.nll_loss({logp}, {target})",
    ),
    # constructors
    OpSpec(
        "param",
        lambda v: v,
        "param",
        _args("value:tensor"),
        "1 (a leaf: autograd stores dL/dw in .grad)",
        "A trainable leaf: requires_grad=True, so backward fills its .grad.",
        kind="constructor",
        torch_code="torch.as_tensor({value}).requires_grad_()",
    ),
    OpSpec(
        "randn",
        _randn,
        "randn",
        _args("*shape:shape"),
        "none (no inputs)",
        "Random numbers from the standard normal distribution, float32.",
        kind="constructor",
        needs_rng=True,
        torch_code="torch.randn({shape})",
    ),
    OpSpec(
        "rand",
        _rand,
        "rand",
        _args("*shape:shape"),
        "none (no inputs)",
        "Random numbers uniform in [0, 1), float32.",
        kind="constructor",
        needs_rng=True,
        torch_code="torch.rand({shape})",
    ),
    OpSpec(
        "zeros",
        _zeros,
        "zeros",
        _args("*shape:shape"),
        "none (no inputs)",
        "A tensor of zeros, float32.",
        kind="constructor",
        torch_code="torch.zeros({shape})",
    ),
    OpSpec(
        "ones",
        _ones_fn,
        "ones",
        _args("*shape:shape"),
        "none (no inputs)",
        "A tensor of ones, float32.",
        kind="constructor",
        torch_code="torch.ones({shape})",
    ),
    OpSpec(
        "eye",
        _eye,
        "eye",
        _args("n:int"),
        "none (no inputs)",
        "The n × n identity matrix, float32.",
        kind="constructor",
        torch_code="torch.eye({n})",
    ),
    OpSpec(
        "arange",
        _arange,
        "arange",
        _args("n:int"),
        "none (no inputs)",
        "0, 1, …, n − 1 as int64.",
        kind="constructor",
        torch_code="torch.arange({n})",
    ),
    OpSpec(
        "seed",
        lambda n: n,
        "seed",
        _args("n:int"),
        "none",
        "Seeds the random numbers of the following lines, so every run sees the same values.",
        kind="constructor",
        torch_code="torch.manual_seed({n})",
    ),
    # operators (written with symbols, not called by name)
    OpSpec(
        "add",
        lambda a, b: a + b,
        "+",
        _AB,
        "1 for both inputs",
        "Addition (broadcasting as torch does).",
        kind="operator",
        elementwise=True,
        manual=lambda a, b: [_ones(a), _ones(b)],
        chain=("1", "1"),
        torch_code="{a} + {b}",
    ),
    OpSpec(
        "sub",
        lambda a, b: a - b,
        "−",
        _AB,
        "1 for a, −1 for b",
        "Subtraction.",
        kind="operator",
        elementwise=True,
        manual=lambda a, b: [_ones(a), -_ones(b)],
        aliases=("rsub",),
        chain=("1", "(−1)"),
        torch_code="{a} - {b}",
    ),
    OpSpec(
        "mul",
        lambda a, b: a * b,
        "×",
        _AB,
        "b for a, a for b",
        "Elementwise product.",
        kind="operator",
        elementwise=True,
        manual=lambda a, b: [b * _ones(a), a * _ones(b)],
        chain=("{1}", "{0}"),
        saved_reason="mul keeps each input the other's gradient needs: d(a·b)/da = b, d(a·b)/db = a",
        torch_code="{a} * {b}",
    ),
    OpSpec(
        "div",
        lambda a, b: a / b,
        "÷",
        _AB,
        "1/b for a, −a/b² for b",
        "Division.",
        kind="operator",
        elementwise=True,
        manual=lambda a, b: [1 / b * _ones(a), -a / b**2 * _ones(b)],
        chain=("1/{1}", "(−{0}/{1}²)"),
        saved_reason="div keeps b, and a when b needs a gradient: d(a/b)/da = 1/b, d(a/b)/db = −a/b²",
        torch_code="{a} / {b}",
    ),
    OpSpec(
        "pow",
        lambda a, b: a**b,
        "^",
        _AB,
        "b·a^(b−1) for a, a^b·ln a for b",
        "Power a ** b.",
        kind="operator",
        elementwise=True,
        manual=_d_pow,
        chain=("{1}·{0}^({1} − 1)", "{0}^{1}·ln {0}"),
        saved_reason="pow keeps the base, the exponent and the result: d(aᵇ)/da = b·aᵇ⁻¹, d(aᵇ)/db = aᵇ·ln a",
        torch_code="{a} ** {b}",
    ),
    OpSpec(
        "neg",
        lambda a: -a,
        "−",
        _args("a:tensor"),
        "−1",
        "Negation.",
        kind="operator",
        elementwise=True,
        manual=lambda a: [-_ones(a)],
        chain=("(−1)",),
        torch_code="-{a}",
    ),
]


OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}

# names a program can call as functions (everything but the symbol operators and the `.T` attribute)
FUNCTIONS = frozenset(n for n, s in OPS.items() if s.kind != "operator" and n != "T")

# method name -> op: `x.sum()` runs OPS["sum"] with x as its first argument (from each spec's `method`)
METHODS: dict[str, str] = {spec.method: spec.name for spec in _SPECS if spec.method}
ATTRIBUTES: dict[str, str] = {"T": "T"}

_BY_ALIAS: dict[str, OpSpec] = {}
for _spec in _SPECS:
    for _alias in (_spec.name, *_spec.aliases):
        _BY_ALIAS.setdefault(_alias.lower(), _spec)


def find_op(name: str | None) -> OpSpec | None:
    """The spec for a language name, a torch function name ("binary_cross_entropy") or a grad_fn
    name ("SigmoidBackward0"), or None."""
    if not name:
        return None
    key = name.lower()
    if key in _BY_ALIAS:
        return _BY_ALIAS[key]
    key = key.removeprefix("torch.").removeprefix("aten::").strip("_")
    if key in _BY_ALIAS:
        return _BY_ALIAS[key]
    # grad_fn class names: SigmoidBackward0, BinaryCrossEntropyBackward0, MmBackward0
    if "backward" in key:
        stem = key.split("backward")[0]
        for alias, spec in _BY_ALIAS.items():
            if alias.replace("_", "") == stem:
                return spec
    return None
