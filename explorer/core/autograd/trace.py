"""Record what torch really does when a callable runs forward and backward.

The forward pass is observed op by op with a ``TorchFunctionMode``: it sees every torch function, tensor
method and operator at the Python API level (``sigmoid``, ``linear``, ``scaled_dot_product_attention``),
which is the level a student wrote and wants to see; a ``TorchDispatchMode`` would show ATen
decompositions (``addmm``, ``_softmax``, ``t``) instead and hide the names of the program. Module paths
come from global ``nn.Module`` forward pre/post hooks. The backward pass is not re-implemented: hooks and
pre-hooks on the real ``grad_fn`` nodes (and on ``AccumulateGrad`` for leaves) record the order in which
torch's engine ran them and the gradients flowing in and out.

Public API (see docs/architecture.md): ``trace``, ``Trace``, ``Node``, ``BackwardEvent``, ``Snapshot``,
``TraceError``.
"""

from __future__ import annotations

import contextlib
import threading
import types
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from explorer.core.autograd.saved import SavedLog, SavedMemory, SavedTensor, attach_saved
from explorer.core.lang.interp import Hooks
from explorer.core.numbers import fmt_number
from explorer.core.speed import no_gc

__all__ = ["BackwardEvent", "Node", "PassInfo", "ProgramTrace", "Snapshot", "Trace", "TraceError", "trace",
           "trace_program", "unrecorded"]


class TraceError(ValueError):
    """The callable's result cannot be traced (not a tensor, or not a scalar for backward)."""


# ----------------------------------------------------------------------------------------------------------
# Snapshots


class Snapshot:
    """A cheap, detached copy of a tensor's value and metadata at one moment of the trace.

    The trace keeps one torch copy of the value (``clone``, of at most ``max_elems`` elements); the numpy
    form in ``data`` (float64 for floating types, a 1-D prefix when truncated) is made on first read, so
    values nobody inspects never pay for the conversion. Reading ``data`` is the one way to the values."""

    __slots__ = ("_data", "_raw", "dtype", "grad_fn", "is_contiguous", "is_leaf", "numel", "requires_grad",
                 "shape", "stride", "truncated")

    def __init__(self, shape: tuple, dtype: str, stride: tuple, is_contiguous: bool, requires_grad: bool,
                 is_leaf: bool, grad_fn: str | None, data: np.ndarray | None, numel: int,
                 truncated: bool = False, raw: torch.Tensor | None = None):
        self.shape = shape
        self.dtype = dtype
        self.stride = stride
        self.is_contiguous = is_contiguous
        self.requires_grad = requires_grad
        self.is_leaf = is_leaf
        self.grad_fn = grad_fn
        self.numel = numel
        self.truncated = truncated
        self._data = data
        self._raw = raw  # the private torch copy, until data is first read

    @property
    def data(self) -> np.ndarray | None:
        """The value as a numpy array: float64 for floating types; a 1-D prefix when truncated."""
        raw = self._raw
        if raw is not None:
            self._data = _numpy_of(raw)
            self._raw = None
        return self._data

    @data.setter
    def data(self, value: np.ndarray | None) -> None:
        self._data, self._raw = value, None

    def __repr__(self) -> str:
        return (f"Snapshot(shape={self.shape}, dtype={self.dtype!r}, numel={self.numel}, "
                f"truncated={self.truncated}, grad_fn={self.grad_fn!r})")

    @classmethod
    def of(cls, t: torch.Tensor, max_elems: int = 4096) -> Snapshot:
        """Snapshot tensor ``t``, keeping at most ``max_elems`` elements of its data (row-major)."""
        numel = t.numel()
        raw, truncated = None, False
        requires_grad = t.requires_grad
        try:  # a copy in every case: later in-place ops (or autograd reusing a buffer) must not change it
            d = t.detach() if requires_grad else t  # (a gradient needs no detach: clone records nothing)
            if d.layout is torch.strided:
                if d.is_cpu:
                    if numel > max_elems:
                        d, truncated = d.reshape(-1)[:max_elems], True
                    raw = d.clone()
                elif not d.is_meta:
                    if numel > max_elems:
                        d, truncated = d.reshape(-1)[:max_elems], True
                    raw = d.cpu()
        except (RuntimeError, TypeError):
            raw, truncated = None, False
        try:
            stride = t.stride()
            contiguous = t.is_contiguous()
        except (RuntimeError, NotImplementedError):  # sparse and other layouts have no strides
            stride, contiguous = (), False
        dtype = _DTYPE_NAMES.get(t.dtype)
        if dtype is None:
            dtype = _DTYPE_NAMES[t.dtype] = str(t.dtype).removeprefix("torch.")
        grad_fn = t.grad_fn
        return cls(tuple(t.shape), dtype, stride, contiguous, requires_grad, t.is_leaf,
                   type(grad_fn).__name__ if grad_fn is not None else None, None, numel, truncated, raw)

    def item(self) -> float | int | bool:
        """The single element of a one-element snapshot."""
        if self.numel != 1 or self.data is None:
            raise ValueError(f"item() needs exactly one element, this value has shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def to_json(self) -> dict:
        """A JSON-able dict: shape, dtype, stride, flags, numel, truncated and data as nested lists."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "stride": list(self.stride),
            "is_contiguous": self.is_contiguous,
            "requires_grad": self.requires_grad,
            "is_leaf": self.is_leaf,
            "grad_fn": self.grad_fn,
            "numel": self.numel,
            "truncated": self.truncated,
            "data": None if self.data is None else _json_data(self.data),
        }


def _json_data(data: np.ndarray):
    """Nested lists; infinities and NaN (a masked attention score, say) become the strings "inf",
    "-inf" and "nan", since strict JSON has no number for them."""
    if data.dtype.kind not in "fc" or np.isfinite(data).all():
        return data.tolist()
    out = data.astype(object)
    out[np.isnan(data)] = "nan"
    out[np.isposinf(data)] = "inf"
    out[np.isneginf(data)] = "-inf"
    return out.tolist()


_DTYPE_NAMES: dict[torch.dtype, str] = {}  # "float32" for torch.float32: str() of a dtype is slow
_STRIDED = torch.strided
_TENSOR = torch.Tensor  # (exact-type checks first: isinstance against torch.Tensor costs ~0.3 µs)
_PARAMETER = torch.nn.Parameter
_grad_enabled = torch.is_grad_enabled
_set_grad_enabled = torch._C._set_grad_enabled
_NUMPY_FLOATS = (torch.float32, torch.float64, torch.float16)


def _numpy_of(d: torch.Tensor) -> np.ndarray | None:
    """The numpy form of a snapshot's private copy, in row-major order: float64 for floating types
    (complex128 for complex)."""
    try:
        dtype = d.dtype
        if dtype in _NUMPY_FLOATS:
            return d.numpy().astype(np.float64)  # numpy converts small arrays faster
        if d.is_floating_point():
            return d.to(torch.float64).numpy()  # bfloat16 and float8 have no numpy type
        if d.is_complex():
            return d.to(torch.complex128).numpy()
        return d.numpy()  # the copy is ours alone
    except (RuntimeError, TypeError):
        return None


# ----------------------------------------------------------------------------------------------------------
# Records


@dataclass
class Node:
    """One value in the traced graph: a leaf, a module parameter, a constant or an op's output."""

    id: str
    kind: str  # "leaf" | "param" | "const" | "op"
    label: str
    name: str | None
    op: str | None
    torch_name: str | None
    module: str | None
    inputs: list[str]
    is_output: bool
    value: Snapshot
    grad: Snapshot | None = None
    call: str | None = None  # the call with its settings, tensors as "·": "transpose(·, 1, 2)"
    saved: list[SavedTensor] | None = None  # op nodes: what its grad_fn keeps for backward (saved.py)
    line: int | None = None  # the program line that made it (programs of the expression language)
    # operands as written when a plain number stood beside a tensor: input index (int) or the number
    # (float), e.g. `a ** 3` is [0, 3.0] and `1 - x` is [1.0, 0]; None when every operand is an input
    operands: list | None = None

    def to_json(self) -> dict:
        """A JSON-able dict of every field, snapshots included."""
        return {
            "line": self.line,
            "operands": self.operands,
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "name": self.name,
            "op": self.op,
            "torch_name": self.torch_name,
            "module": self.module,
            "inputs": list(self.inputs),
            "is_output": self.is_output,
            "value": self.value.to_json(),
            "grad": None if self.grad is None else self.grad.to_json(),
            "call": self.call,
            "saved": None if self.saved is None else [s.to_json() for s in self.saved],
        }


@dataclass
class BackwardEvent:
    """What autograd's engine did at one node: the gradient arriving and the gradients sent on."""

    node_id: str
    torch_name: str
    grad_outputs: list[Snapshot | None]
    grad_inputs: list[Snapshot | None] = field(default_factory=list)
    grad_before: Snapshot | None = None  # leaves: .grad before accumulation
    grad_after: Snapshot | None = None  # leaves: .grad after accumulation

    def to_json(self) -> dict:
        """A JSON-able dict of the event."""

        def js(s):
            return None if s is None else s.to_json()

        return {
            "node_id": self.node_id,
            "torch_name": self.torch_name,
            "grad_outputs": [js(s) for s in self.grad_outputs],
            "grad_inputs": [js(s) for s in self.grad_inputs],
            "grad_before": js(self.grad_before),
            "grad_after": js(self.grad_after),
        }


@dataclass
class Trace:
    """The record of one forward and backward run: nodes, both orders and the data-flow graph."""

    nodes: dict[str, Node]
    forward_order: list[str]
    backward_order: list[str]
    backward_events: list[BackwardEvent]
    output_id: str
    graph: nx.DiGraph
    modules: dict[str, str] = field(default_factory=dict)  # module path -> class name
    saved_memory: SavedMemory | None = None  # bytes autograd kept for backward (saved.py)
    # the backward passes of a program's iteration, in order: each one's events are a slice of
    # backward_events; one implicit pass when the program called no backward itself
    passes: list[PassInfo] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # optimizer steps, zero_grad: {"kind", "line", "text"}

    def by_name(self) -> dict[str, Node]:
        """Nodes that carry a user variable or parameter name, by that name (the latest value wins)."""
        return {n.name: n for n in (self.nodes[i] for i in self.forward_order) if n.name}

    def event(self, node_id: str) -> BackwardEvent | None:
        """The backward event of a node, or None when autograd never ran it."""
        for e in self.backward_events:
            if e.node_id == node_id:
                return e
        return None

    def to_json(self) -> dict:
        """Everything needed to replay the trace, as plain JSON types (``json.dumps`` works on it)."""
        edges = [
            {"source": u, "target": v, "arg": d.get("arg", 0)} for u, v, d in self.graph.edges(data=True)
        ]
        return {
            "nodes": [self.nodes[i].to_json() for i in self.forward_order],
            "edges": edges,
            "forward_order": list(self.forward_order),
            "backward_order": list(self.backward_order),
            "backward_events": [e.to_json() for e in self.backward_events],
            "output": self.output_id,
            "modules": dict(self.modules),
            "saved_bytes": None if self.saved_memory is None else self.saved_memory.total,
            "saved_memory": None if self.saved_memory is None else self.saved_memory.to_json(),
            "passes": [p.to_json() for p in self.passes],
            "events": list(self.events),
        }


@dataclass
class PassInfo:
    """One backward pass of a program: `x.backward()`, `torch.autograd.grad(...)`, or the implicit one."""

    kind: str  # "backward" | "grad" | "implicit"
    root: str  # the node it differentiated
    first: int  # index of its first event in the trace's backward_events
    count: int  # how many events it has
    line: int | None = None

    def to_json(self) -> dict:
        """A JSON-able dict."""
        return {"kind": self.kind, "root": self.root, "first": self.first, "count": self.count,
                "line": self.line}


# ----------------------------------------------------------------------------------------------------------
# Forward recording

# Symbols read better than names on a textbook drawing; everything else keeps torch's name.
_SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "matmul": "@", "pow": "**", "neg": "−"}
# Dunder spellings of the same ops; the reflected ones read the same to a student.
_DUNDER = {
    "truediv": "div", "radd": "add", "rsub": "sub", "rmul": "mul", "rtruediv": "div", "rdiv": "div",
    "rmatmul": "matmul", "rpow": "pow", "iadd": "add_", "isub": "sub_", "imul": "mul_",
    "itruediv": "div_", "idiv": "div_", "ipow": "pow_", "imatmul": "matmul_",
}  # fmt: skip
_REFLECTED = {"__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__rdiv__", "__rmatmul__", "__rpow__"}
# Tensor properties that compute a new value; other properties (grad, data, shape, ...) are bookkeeping.
_VALUE_PROPERTIES = {"T", "mT", "H", "mH", "real", "imag"}
# Calls that change flags or register callbacks rather than compute a value.
_IGNORED = {"requires_grad_", "retain_grad", "register_hook", "backward", "detach_", "share_memory_"}


_OP_NAMES: dict = {}  # torch function -> _op_name's answer: the same for every call of one function
_UNSEEN = object()


def _op_name(func) -> str | None:
    """The op's short name ('sigmoid', 'mul', 'T'), or None for calls that are not value computations."""
    try:
        op = _OP_NAMES.get(func, _UNSEEN)
    except TypeError:  # an unhashable callable: named afresh each time
        return _name_op(func)
    if op is _UNSEEN:
        op = _name_op(func)
        if len(_OP_NAMES) < 4096 and _is_torch_api(func):  # a few thousand functions at most
            _OP_NAMES[func] = op
    return op


_C_CALLABLES = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                types.ClassMethodDescriptorType)


def _is_torch_api(func) -> bool:
    """Whether ``func`` is one of torch's own functions, safe to keep as a key forever: never a user's
    closure or a method bound to a tensor, which would keep that object alive."""
    if isinstance(func, _C_CALLABLES):
        owner = getattr(func, "__self__", None)
        return owner is None or isinstance(owner, (types.ModuleType, type))
    if isinstance(func, types.MethodWrapperType):  # a property's __get__ (Tensor.T): bound to the descriptor
        return isinstance(func.__self__, types.GetSetDescriptorType)
    if isinstance(func, types.FunctionType):  # torch.nn.functional and friends, written in Python
        return func.__closure__ is None and (func.__module__ or "").startswith("torch")
    return False


def _name_op(func) -> str | None:
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__":
        prop = getattr(getattr(func, "__self__", None), "__name__", None)
        return prop if prop in _VALUE_PROPERTIES else None
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        name = _DUNDER.get(name, name)
    if name in _IGNORED:
        return None
    return name


def _flat_tensors(obj, out: list) -> list:
    """Append every tensor inside nested lists/tuples/dicts of ``obj`` to ``out`` (in order)."""
    kind = type(obj)
    if kind is not tuple and kind is not dict:  # (a call's args and kwargs: checked by exact type first)
        if isinstance(obj, torch.Tensor):
            out.append(obj)
            return out
        if isinstance(obj, dict):
            obj = obj.values()
        elif not isinstance(obj, (list, tuple)):
            return out
    elif kind is dict:
        obj = obj.values()
    for o in obj:  # the common items (tensors, numbers) without a call each
        kind = type(o)
        if kind is _TENSOR or kind is _PARAMETER:
            out.append(o)
        elif kind is int or kind is float or o is None or kind is str or kind is bool:
            continue
        elif isinstance(o, torch.Tensor):
            out.append(o)
        elif isinstance(o, (list, tuple, dict)):
            _flat_tensors(o, out)
    return out


def _members(module, table: str) -> list:
    """(name, object) of one of an ``nn.Module``'s own tables ("_parameters", "_buffers", "_modules"),
    the entries that hold something, in the table's order: what named_parameters / named_buffers
    (recurse=False) and named_children yield, without their generators."""
    items = getattr(module, table, None)
    if not isinstance(items, dict):
        return []
    return [(name, v) for name, v in items.items() if v is not None]


def _is_inplace(op: str) -> bool:
    return op == "setitem" or (op.endswith("_") and not op.startswith("_"))


_ACTIVE = threading.local()  # the recorder of the trace running on this thread, if any


def unrecorded():
    """A context in which the torch calls of this thread are not recorded by a running trace (a program's
    initialisers, size checks and the interpreter's own bookkeeping); a no-op when nothing is traced."""
    rec = getattr(_ACTIVE, "recorder", None)
    return _Paused(rec) if rec is not None else contextlib.nullcontext()


class _Recorder(TorchFunctionMode):
    """Sees each torch call of the traced callable and turns it into nodes (forward half of ``trace``)."""

    def __enter__(self):
        self._outer = getattr(_ACTIVE, "recorder", None)
        _ACTIVE.recorder = self
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE.recorder = self._outer
        return super().__exit__(*exc)

    def __init__(self, max_snapshot_elems: int):
        super().__init__()
        self.max_elems = max_snapshot_elems
        self.thread = threading.get_ident()
        self.nodes: dict[str, Node] = {}
        self.order: list[str] = []
        self.producer: dict[int, str] = {}  # id(tensor) -> id of the node holding its current value
        self.tensor_of: dict[str, torch.Tensor] = {}  # node id -> tensor (released after backward)
        self.edge_of: dict[str, tuple[Any, int]] = {}  # node id -> (grad_fn, output_nr) at creation
        self.by_edge: dict[tuple[int, int], str] = {}  # (id(grad_fn), output_nr) -> latest node id
        self.module_stack: list[str] = []  # paths of the calls in progress ("act#2" for a second call)
        self.static_stack: list[str] = []  # the same modules' paths in the model
        self.calls: dict[str, int] = {}  # path -> calls so far
        self.module_paths: dict[int, str] = {}  # id(module) -> path
        self.modules: dict[str, str] = {}  # path -> class name
        self.param_names: dict[int, str] = {}  # id(param or buffer) -> dotted path
        self.roots = 0
        self.paused = False  # calls while paused are not part of the graph (initialisers, size checks)
        self.line: int | None = None  # the program line now running (set by the interpreter)
        self.index: dict[str, int] = {}  # node id -> its position in order
        self.leaf_keys: list[int] = []  # id(tensor) of leaf nodes made since the last segment
        self.carried: dict[int, str] = {}  # id(tensor) -> the name its leaf node had before the segment

    # -- modules --------------------------------------------------------------------------------------
    def pre_hook(self, module, _args):
        """Global module forward pre-hook: push the module path (registering a new root if unknown)."""
        if threading.get_ident() != self.thread:
            return
        if id(module) not in self.module_paths:
            self._register_root(module)
        static = self.module_paths[id(module)]
        path = static
        if self.module_stack and self.static_stack[-1] and static.startswith(self.static_stack[-1] + "."):
            path = self.module_stack[-1] + static[len(self.static_stack[-1]):]  # inside a repeated call
        # A module called again (one ReLU reused after every layer) is a separate step of the
        # computation: "act", then "act#2", so that grouping by module never merges the two calls.
        calls = self.calls.get(path, 0) + 1
        self.calls[path] = calls
        if calls > 1:
            path = f"{path}#{calls}"
            self.modules.setdefault(path, type(module).__name__)
        self.module_stack.append(path)
        self.static_stack.append(static)

    def post_hook(self, module, _args, _out):
        """Global module forward hook: pop the module path."""
        if threading.get_ident() != self.thread:
            return
        if self.module_stack:
            self.module_stack.pop()
            self.static_stack.pop()

    def _register_root(self, module):
        # The first module called is the model: its paths read exactly like named_parameters()
        # ("0.weight"). Later unrelated modules (a loss module, say) get their class name as a prefix.
        prefix = ""
        if self.module_stack:
            prefix = self.module_stack[-1] + "." + type(module).__name__
        elif self.roots:
            prefix = type(module).__name__
        self.roots += 1

        def join(p):
            return ".".join(s for s in (prefix, p) if s)

        # One walk of the module tree in named_modules(remove_duplicate=False)'s order, reading each module's
        # own parameter and buffer tables as named_parameters / named_buffers(recurse=False) do (their
        # generators cost ~10 µs a module: a GPT of 10,000 nodes has 3,400 modules); the parameters first,
        # then the buffers, each in that order: the first path wins.
        # (The tables are read in place where they are dicts, as nearly always: _members' call and list per
        # table cost ~3,000 instructions, three tables a module, every module, every trace.)
        buffers = []
        module_paths, modules, param_names = self.module_paths, self.modules, self.param_names
        stack = [("", module)]
        while stack:
            path, m = stack.pop()
            full = join(path) if prefix else path
            module_paths.setdefault(id(m), full)
            modules.setdefault(full, type(m).__name__)
            dot = path + "." if path else ""
            table = getattr(m, "_parameters", None)
            for name, p in (table.items() if type(table) is dict else _members(m, "_parameters")):
                if p is not None:
                    param_names.setdefault(id(p), join(dot + name) if prefix else dot + name)
            buffers.append((dot, m))
            table = getattr(m, "_modules", None)
            children = [(dot + name, c) for name, c in
                        (table.items() if type(table) is dict else _members(m, "_modules")) if c is not None]
            stack.extend(reversed(children))
        for dot, m in buffers:
            table = getattr(m, "_buffers", None)
            for name, b in (table.items() if type(table) is dict else _members(m, "_buffers")):
                if b is not None:
                    param_names.setdefault(id(b), join(dot + name) if prefix else dot + name)

    @property
    def current_module(self) -> str | None:
        return (self.module_stack[-1] or None) if self.module_stack else None

    # -- ops ------------------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        if self.paused:
            return func(*args, **kwargs)
        try:
            try:
                info = _OP_INFO[func]
            except (KeyError, TypeError):  # a function seen first, or an unhashable callable
                info = _op_info(func)
            ins = []
            inplace = False
            if info is not None:
                _flat_tensors(args, ins)
                if kwargs:
                    _flat_tensors(kwargs, ins)
            if ins:
                inplace = info[1]
                if inplace and ins[0].is_leaf and ins[0].requires_grad:
                    ins = []  # initialisation or an optimizer update of a parameter, not part of the graph
            # Inputs are resolved before the call: an in-place op changes its input's autograd node,
            # and must read the value as it was. An input no node holds yet is a leaf made only if the
            # call is recorded (None until then).
            if inplace:
                before = [self.node_for(t) for t in ins]
            elif ins:
                producer, node_for = self.producer, self.node_for
                before = [node_for(t) if id(t) in producer else None for t in ins]
        except Exception:  # noqa: BLE001 -- recording must never break the user's program
            ins = []
        out = func(*args, **kwargs)
        if ins:
            grad_mode = _grad_enabled()
            _set_grad_enabled(False)  # the recorder's copies are no part of the graph
            try:
                self._record(info, args, kwargs, out, ins, before)
            except Exception:  # noqa: BLE001
                pass
            finally:
                _set_grad_enabled(grad_mode)
        return out

    def _record(self, info, args, kwargs, out, ins, before):
        op, inplace, label, reflected = info
        if inplace:
            outs = [ins[0]]
        elif isinstance(out, torch.Tensor):
            outs = [out]
        else:
            outs = _flat_tensors(out, [])
            if not outs:
                return
        node_for = self.node_for
        input_ids = [nid if nid is not None else node_for(t) for t, nid in zip(ins, before, strict=True)]
        # x.__rsub__(1) computes 1 - x: show the operands in the order the program wrote them.
        shown = args[::-1] if reflected and len(args) == 2 else args
        call = _call_text(op, shown, kwargs)
        operands = _operands(op, shown, ins) if op in _OPERAND_OPS else None
        stack = self.module_stack  # the op's outputs belong to the module now running
        module = (stack[-1] or None) if stack else None
        put = self._put
        if len(outs) == 1:
            t = outs[0]
            put(t, "op" if t.requires_grad else "const", label, None, op, module, input_ids, call, operands)
            return
        for k, t in enumerate(outs):
            put(t, "op" if t.requires_grad else "const", f"{label}[{k}]", None, op, module, input_ids, call,
                operands)

    def node_for(self, t: torch.Tensor) -> str:
        """Id of the node holding t's current value, creating a leaf node at first use."""
        nid = self.producer.get(id(t))
        if nid is not None:
            fn = t.grad_fn
            if fn is not None:
                edge = self.edge_of.get(nid)
                if edge is None or edge[0] is not fn:
                    return self._add_unseen_op(t, fn)
                return nid
            if not t.requires_grad or self.nodes[nid].kind != "const":
                return nid
            # a value that became a leaf requiring grad after it was made (`w = randn(3) * 0.1`, then
            # `w.requires_grad_()`): from now on it is a parameter
        path = self.param_names.get(id(t))
        pname = path or self.carried.get(id(t))
        # Only a leaf that requires grad is a parameter; a tensor computed before the traced call
        # (it has a grad_fn) is an input from outside, though gradients still flow through it.
        kind = "param" if t.requires_grad and t.is_leaf else "leaf"
        label = pname or _leaf_label(t, kind)
        # A parameter or buffer belongs to the module that owns it; a plain input belongs to none,
        # even when it is first read inside a module.
        module = (path.rpartition(".")[0] or None) if path else None
        self.leaf_keys.append(id(t))
        return self._add_node(t, kind=kind, label=label, op=None, inputs=[], name=pname, module=module)

    def new_segment(self) -> None:
        """Leaves used from now on get new nodes holding their values then (an optimizer changed them);
        a named leaf keeps its name on its new node."""
        for key in self.leaf_keys:
            nid = self.producer.pop(key, None)
            if nid is not None and self.nodes[nid].name:
                self.carried[key] = self.nodes[nid].name
        self.leaf_keys.clear()

    def _add_unseen_op(self, t: torch.Tensor, fn) -> str:
        """A value whose autograd node no recorded call made: a custom ``autograd.Function`` (its
        ``apply`` is invisible to function modes; the ops inside its forward show up as constants) or a
        view refreshed after an in-place change. Its inputs are found through the autograd graph."""
        inputs = []
        for nf, nr in fn.next_functions:
            if nf is None:
                continue
            var = getattr(nf, "variable", None)  # AccumulateGrad holds its leaf
            if var is not None:
                inputs.append(self.node_for(var))
            elif (id(nf), nr) in self.by_edge:
                inputs.append(self.by_edge[(id(nf), nr)])
        op = type(fn).__name__.removesuffix("0").removesuffix("Backward") or type(fn).__name__
        nid = self._add_node(t, kind="op", label=op, op=op, inputs=inputs)
        self.nodes[nid].call = f"{op}(" + ", ".join("·" for _ in inputs) + ")"
        return nid

    def _add_node(self, t, *, kind, label, op, inputs, name=None, module="", call=None, operands=None) -> str:
        if module == "":
            module = (self.module_stack[-1] or None) if self.module_stack else None
        return self._put(t, kind, label, name, op, module, inputs, call, operands)

    def _put(self, t, kind, label, name, op, module, inputs, call, operands) -> str:
        index = len(self.order)
        nid = f"n{index}"
        grad_fn = t.grad_fn
        if grad_fn is None:
            fn_name = None
        else:
            kind_of_fn = type(grad_fn)
            fn_name = _FN_NAMES.get(kind_of_fn)
            if fn_name is None:
                fn_name = kind_of_fn.__name__
                if len(_FN_NAMES) < 4096:  # (classes made on the fly, custom Functions, stay bounded)
                    _FN_NAMES[kind_of_fn] = fn_name
        # (positional, in the field order: id, kind, label, name, op, torch_name, module, inputs, is_output,
        # value, grad, call, saved, line, operands)
        self.nodes[nid] = Node(
            nid, kind, label, name, op, fn_name, module, list(inputs), False,
            _value_snapshot(t, self.max_elems, fn_name), None, call, None, self.line, operands,
        )  # fmt: skip
        self.index[nid] = index
        self.order.append(nid)
        self.producer[id(t)] = nid
        self.tensor_of[nid] = t  # (and keeps ids stable while recording)
        if grad_fn is not None:
            nr = t.output_nr
            self.edge_of[nid] = (grad_fn, nr)
            self.by_edge[(id(grad_fn), nr)] = nid
        return nid


_FN_NAMES: dict[type, str] = {}  # autograd node class -> its name


def _value_snapshot(t: torch.Tensor, max_elems: int, fn_name: str | None) -> Snapshot:
    """``Snapshot.of(t, max_elems)`` for a value whose grad_fn's class name is ``fn_name``; a small CPU
    tensor (nearly every value) without Snapshot.of's generality."""
    numel = t.numel()
    if numel > max_elems or not t.is_cpu or t.layout is not _STRIDED:
        return Snapshot.of(t, max_elems)
    dtype = _DTYPE_NAMES.get(t.dtype)
    if dtype is None:
        return Snapshot.of(t, max_elems)
    requires_grad = t.requires_grad
    try:  # a copy: later in-place ops must not change it (_record copies with autograd off: no detach)
        raw = t.detach().clone() if requires_grad and _grad_enabled() else t.clone()
    except (RuntimeError, TypeError):
        return Snapshot.of(t, max_elems)
    # (is_leaf is "no grad_fn", which fn_name already says: torch's own definition of the flag)
    return Snapshot(tuple(t.shape), dtype, t.stride(), t.is_contiguous(), requires_grad, fn_name is None,
                    fn_name, None, numel, False, raw)


def _op_info(func) -> tuple | None:
    """(op name, in place, label, reflected) of a torch function, or None for calls that are not value
    computations; kept in _OP_INFO for torch's own functions (as _op_name's names are)."""
    op = _op_name(func)
    info = None
    if op is not None:
        inplace = _is_inplace(op)
        base = op.rstrip("_") if inplace else op
        # a property reads as an attribute (".T"): a bare "T" would look like a variable named T
        label = _SYMBOLS.get(base, f".{op}" if op in _VALUE_PROPERTIES else op)
        info = (op, inplace, label, getattr(func, "__name__", "") in _REFLECTED)
    try:
        if len(_OP_INFO) < 4096 and _is_torch_api(func):
            _OP_INFO[func] = info
    except TypeError:  # unhashable: worked out afresh each time
        pass
    return info


_OP_INFO: dict = {}  # torch function -> _op_info's answer


_OPERAND_OPS = {"add", "sub", "mul", "div", "pow", "rsub", "true_divide", "multiply", "subtract", "divide"}


def _operands(op: str, args, ins: list) -> list | None:
    """The call's leading operands as written: an int (which input) or a plain number (a constant), for
    ops such as `a ** 3` or `2 * x` that take a Python number beside a tensor; None when every operand is
    an input."""
    if op not in _OPERAND_OPS or not any(isinstance(a, (int, float)) and not isinstance(a, bool)
                                         for a in args[:2]):
        return None
    out: list = []
    used: set[int] = set()
    for a in args[:2]:
        if isinstance(a, torch.Tensor):
            position = next((i for i, t in enumerate(ins) if t is a and i not in used), None)
            if position is None:
                return None
            used.add(position)
            out.append(position)
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            out.append(float(a))
        else:
            return None
    return out


def _show(a) -> str:
    """One argument of a call as written: tensors as "·", numbers, dtypes, slices, nested lists."""
    kind = type(a)  # the common exact types first (isinstance against torch.Tensor costs ~0.3 µs)
    if kind is int or kind is bool or kind is str or a is None:
        return repr(a)
    if kind is float:
        return _float_text(a)
    if kind is tuple:
        return f"({', '.join([_show(x) for x in a])})"
    return _show_other(a)


def _show_other(a) -> str:
    """``_show`` of everything but the exact types it answers itself (in the same order of checks)."""
    if isinstance(a, torch.Tensor):
        return "·"
    if isinstance(a, (list, tuple)):
        inner = ", ".join([_show(x) for x in a])
        return f"[{inner}]" if isinstance(a, list) else f"({inner})"
    if isinstance(a, float):
        return fmt_number(a)
    if isinstance(a, torch.dtype):
        return str(a).removeprefix("torch.")
    if isinstance(a, slice):  # written the way a student indexes: 1:5, :, ::2
        text = ":".join("" if v is None else str(v) for v in (a.start, a.stop))
        return text + (f":{a.step}" if a.step is not None else "")
    if a is Ellipsis:
        return "..."
    if a is None or isinstance(a, (bool, int, str)):
        return repr(a)
    return type(a).__name__


_FLOAT_TEXT: dict[float, str] = {}  # fmt_number of the floats calls were written with (eps, p, ...)


def _float_text(v: float) -> str:
    """``fmt_number(v)`` of a float, remembered (a call's settings repeat: eps=1e-05 on every layer norm);
    equal floats read the same (0.0 and -0.0 are both "0"), NaN is never found and made afresh."""
    text = _FLOAT_TEXT.get(v)
    if text is None:
        text = fmt_number(v)
        if len(_FLOAT_TEXT) < 1024:
            _FLOAT_TEXT[v] = text
    return text


def _call_text(op: str, args, kwargs, limit: int = 80) -> str:
    """How the op was called, short: tensors as "·", settings as written ("softmax(·, dim=-1)")."""
    parts = []
    for a in args:  # tensors and plain ints (most arguments) by their exact type, without a call each
        kind = type(a)
        if kind is _TENSOR or kind is _PARAMETER:
            parts.append("·")
        elif kind is int:
            parts.append(str(a))
        else:
            parts.append(_show(a))  # (a tensor of another class too)
    if kwargs:  # defaults left as None and private knobs (_stacklevel) say nothing about this call
        parts += [f"{k}={_show(v)}" for k, v in kwargs.items() if v is not None and not k.startswith("_")]
    text = f"{op}({', '.join(parts)})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _leaf_label(t: torch.Tensor, kind: str) -> str:
    if t.numel() == 1:
        try:
            return fmt_number(t.detach().reshape(-1)[0].item(), integer=not t.is_floating_point())
        except (RuntimeError, TypeError):
            pass
    if t.dim() == 1:  # "(2,)": a bare "2" would read as the number 2
        return f"({t.shape[0]},)"
    return "×".join(str(s) for s in t.shape) or kind


# ----------------------------------------------------------------------------------------------------------
# Backward recording


class _BackwardRecorder:
    """Registers hooks on the real autograd nodes and records events in the engine's order.

    The hooks only copy what the engine hands them (the gradients arriving, a leaf's ``.grad`` before its
    accumulation, the gradients sent to inputs that have another consumer too) into a log, in the order the
    engine runs them; ``finish`` turns the log into events and snapshots after the pass."""

    def __init__(self, rec: _Recorder, order: list[str] | None = None):
        self.rec = rec
        self.order = rec.order if order is None else order
        self.max_elems = rec.max_elems
        self.events: list[BackwardEvent] = []
        self.log: list[tuple] = []  # (key, gradients arriving, leaves' .grad before) per node run, in order
        self.sent: dict[int, list] = {}  # key -> the gradients a hooked node sent (grad_inputs), copied
        self.routes: dict[int, list] = {}  # key -> per member: grad_inputs index for each input, or None
        self.handles: list = []
        self.shared: dict | None = None  # the shared tensor-hook dict (_shared_hook), emptied by remove()
        self.members: dict[int, list[tuple[str, int]]] = {}  # id(grad_fn) -> [(node id, output_nr)]
        self.names: dict[int, str] = {}  # id(grad_fn) -> its class name
        self.fn_of: dict[str, Any] = {}  # node id -> autograd node
        self.uses: dict[str, int] = {}  # node id -> how many op inputs read it
        nodes = rec.nodes
        uses = self.uses
        for nid in self.order:
            for i in nodes[nid].inputs:
                uses[i] = uses.get(i, 0) + 1

    def install(self):
        """Map each node to its autograd node and hook every one of them once."""
        rec = self.rec
        by_fn: dict[int, Any] = {}
        nodes, tensor_of, edge_of = rec.nodes, rec.tensor_of, rec.edge_of
        fn_of, members = self.fn_of, self.members
        accumulators = None
        for nid in self.order:
            edge = edge_of.get(nid)
            if edge is not None:
                fn, nr = edge
            else:
                t = tensor_of[nid]
                if not (t.is_leaf and t.requires_grad):
                    continue
                # a parameter, or an op that returned one unchanged: its AccumulateGrad
                if accumulators is None:
                    accumulators = self._accumulators()
                fn, nr = accumulators.get(id(t)), 0
                if fn is None:  # a leaf no recorded op's autograd node reaches
                    fn = torch.autograd.graph.get_gradient_edge(t).node
                nodes[nid].torch_name = type(fn).__name__
            fn_of[nid] = fn
            key = id(fn)
            group = members.get(key)
            if group is None:
                members[key] = [(nid, nr)]
                by_fn[key] = fn
            else:
                group.append((nid, nr))
        uses, names, handles, sent = self.uses, self.names, self.handles, self.sent
        log_append, max_elems = self.log.append, self.max_elems
        shared = carrier = None
        multi = {i for i, count in uses.items() if count > 1 and i in fn_of}  # read by more than one op
        if _TENSOR_HOOKS and len(by_fn) >= _SHARED_HOOK_MIN:
            shared, carrier = self._shared_hook()
        for key, fn in by_fn.items():
            name = names[key] = type(fn).__name__
            group = members[key]
            if name == "AccumulateGrad":
                # .grad before the leaf's accumulation, for each member (the later ones first, as events)
                leaves = [tensor_of[nid] for nid, _ in reversed(group)]

                def prehook(grad_outputs, key=key, leaves=leaves):
                    log_append((key, [_grab(g, max_elems) for g in grad_outputs],
                                [_grab(t.grad, max_elems) for t in leaves]))

                handles.append(fn.register_prehook(prehook))
                continue

            if shared is not None and _one_gradient_in(fn, name):
                fn._register_hook_dict(carrier)  # the shared hook: ~1.3 µs to add, not ~7 (see _tensor_hooks)
            else:

                def prehook(grad_outputs, key=key):
                    log_append((key, [_grab(g, max_elems) for g in grad_outputs], None))

                handles.append(fn.register_prehook(prehook))
            # The gradients a node sends matter only to inputs with another consumer too (the others get
            # theirs from their own pre-hook, filled in after backward); a node without such an input
            # (most of them) needs no hook after it runs. AccumulateGrad needs none either: a leaf's
            # node runs once per pass, so .grad after the pass is .grad after its accumulation (finish).
            if _reads_any(group, nodes, multi):
                routes = [self._routes(nid, fn) for nid, _ in reversed(group)]
                wanted = sorted({k for r in routes for k in r if k is not None})
                self.routes[key] = routes

                def hook(grad_inputs, _grad_outputs, key=key, wanted=wanted):
                    n = len(grad_inputs)
                    sent[key] = {k: _grab(grad_inputs[k], max_elems) for k in wanted if k < n}

                handles.append(fn.register_hook(hook))

    def _accumulators(self) -> dict[int, Any]:
        """id(leaf tensor) -> its ``AccumulateGrad``, for the leaves that the recorded ops of this pass read:
        found on the edges of those ops' autograd nodes (and of the hidden nodes only they reach, such as
        the transpose inside ``linear``). A leaf has one such node while an edge points to it, the one
        ``get_gradient_edge`` returns, which makes a view of the leaf to find it (~30,000 instructions a
        leaf, a third of the nodes of a GPT step); this reads ~1.5 edges a leaf."""
        rec = self.rec
        nodes, edge_of = rec.nodes, rec.edge_of
        recorded = {id(edge[0]) for edge in edge_of.values()}  # their own walks cover what they reach
        found: dict[int, Any] = {}
        seen: set[int] = set()
        for nid in self.order:
            edge = edge_of.get(nid)
            if edge is None:
                continue
            for i in nodes[nid].inputs:  # only the ops that read a value without an autograd node
                if i not in edge_of:
                    break
            else:
                continue
            stack = [edge[0]]
            while stack:
                for nf, _ in stack.pop().next_functions:
                    if nf is None or id(nf) in seen:
                        continue
                    seen.add(id(nf))
                    kind = type(nf)
                    leaf = _IS_ACCUMULATOR.get(kind)
                    if leaf is None:
                        leaf = _IS_ACCUMULATOR[kind] = kind.__name__ == "AccumulateGrad"
                    if leaf:
                        found[id(nf.variable)] = nf
                    elif id(nf) not in recorded:
                        stack.append(nf)
        return found

    def _shared_hook(self) -> tuple[dict, torch.Tensor]:
        """One hook for every autograd node with one incoming gradient, registered on each as the gradient
        hooks of a tensor are (``Tensor.register_hook`` does the same with a tensor's own dict): the engine
        calls it with that gradient just before the node runs, where ``_current_autograd_node`` says which
        node it is. Registering it is a C++ call (``Node.register_prehook`` builds a Python handle and a
        dict per node: ~7 µs each, 10,000 nodes at 10k) and a call is ~1.5 µs cheaper. Removed by emptying
        the dict (a node that outlives the trace then calls an empty dict)."""
        log_append, max_elems = self.log.append, self.max_elems
        current = torch._C._current_autograd_node

        def tensor_prehook(grad):
            log_append((id(current()), [_grab(grad, max_elems)], None))

        shared = {0: tensor_prehook}
        carrier = torch.empty(0)  # a private tensor: its output_nr (0) picks the node's one gradient
        carrier._backward_hooks = shared
        self.shared = shared
        return shared, carrier

    def _routes(self, nid: str, fn) -> list[int | None]:
        """For each input of node ``nid``: the index in its autograd node's grad_inputs of the gradient
        sent to it, where that gradient is recorded here (an input with another consumer too); None where
        it is filled in after backward (the input's sole consumer: what it receives is what this node
        sent, and its own pre-hook copies that) or not traceable."""
        nexts = list(fn.next_functions)
        used = [False] * len(nexts)
        fn_of, edge_of, uses = self.fn_of, self.rec.edge_of, self.uses
        out: list[int | None] = []
        for inp in self.rec.nodes[nid].inputs:
            target = fn_of.get(inp)
            target_nr = edge_of.get(inp, (None, 0))[1]
            found = None
            for i, (nf, nr) in enumerate(nexts):
                if not used[i] and nf is not None and nf is target and nr == target_nr:
                    used[i] = True
                    found = i
                    break
            out.append(None if uses.get(inp) == 1 and inp in fn_of else found)
        return out

    def finish(self):
        """After the pass: the events in the engine's order, the nodes' gradients, and each leaf's .grad as
        its AccumulateGrad left it (the event's grad_after)."""
        nodes, tensor_of, max_elems = self.rec.nodes, self.rec.tensor_of, self.max_elems
        members, names, routes, sent = self.members, self.names, self.routes, self.sent
        events = self.events
        snapshot = Snapshot
        for key, grads, befores in self.log:
            group = members[key]
            if len(grads) == 1 and len(group) == 1 and group[0][1] == 0:  # (nearly every node)
                g = grads[0]
                if type(g) is tuple:  # _settle_as of a small CPU gradient, inline
                    value = nodes[group[0][0]].value
                    snaps = [snapshot(value.shape, value.dtype, g[1], g[2], False, True, None, None,
                                      value.numel, False, g[0])]
                else:
                    snaps = [_settle_as(g, nodes[group[0][0]].value)]
            else:  # gradient k arrives for output k of the autograd node: the member with output_nr k
                values = {nr: nodes[nid].value for nid, nr in group}
                snaps = [_settle_as(g, values.get(k)) for k, g in enumerate(grads)]
            name = names[key]
            count = len(snaps)
            if befores is not None:  # AccumulateGrad: grad_inputs stay [], a leaf sends nothing on
                for (nid, nr), before in zip(reversed(group), befores, strict=True):
                    if nr < count:
                        nodes[nid].grad = snaps[nr]
                    after = tensor_of[nid].grad  # (its copy as _grab + _settle make it: Snapshot.of's fields)
                    value = nodes[nid].value  # (.grad has its leaf's shape and dtype: torch checks it)
                    after = None if after is None else _settle_as(_grab(after, max_elems), value)
                    events.append(BackwardEvent(nid, name, snaps, [], _settle_as(before, value), after))
                continue
            member_routes = routes.get(key)
            out = sent.get(key) if member_routes is not None else None
            for k, (nid, nr) in enumerate(reversed(group)):
                node = nodes[nid]
                if nr < count:
                    node.grad = snaps[nr]
                if member_routes is None:  # every input gets its gradient elsewhere
                    grad_inputs = [None] * len(node.inputs)
                elif out is None:  # the node's hook did not run
                    grad_inputs = []
                else:
                    # (each validated to its input's shape and dtype before the node's hook saw it)
                    inputs = node.inputs
                    grad_inputs = [None if i is None else _settle_as(out.get(i), nodes[inputs[j]].value)
                                   for j, i in enumerate(member_routes[k])]
                events.append(BackwardEvent(nid, name, snaps, grad_inputs, None, None))
        self.log.clear()
        self.sent.clear()

    def remove(self):
        """Remove every hook (autograd nodes can outlive the trace when a graph is retained)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        if self.shared is not None:
            self.shared.clear()



# Hooks through tensor-hook dicts (_BackwardRecorder._shared_hook) need these two torch internals; without
# them every node gets its own Node.register_prehook.
_TENSOR_HOOKS = hasattr(torch._C, "_current_autograd_node") and hasattr(torch.autograd.graph.Node,
                                                                        "_register_hook_dict")
_IS_ACCUMULATOR: dict[type, bool] = {}  # autograd node class -> whether it is AccumulateGrad (a leaf's)
_SHARED_HOOK_MIN = 1  # autograd nodes from which the shared hook is used (tests set it high to compare)


def _reads_any(group: list, nodes: dict, ids: set) -> bool:
    """Whether a node of ``group`` ([(node id, output_nr)]) has an input in ``ids``."""
    for nid, _ in group:
        for i in nodes[nid].inputs:
            if i in ids:
                return True
    return False


def _one_gradient_in(fn, name: str) -> bool:
    """Whether the shared tensor hook can stand in for a pre-hook on ``fn``: it receives one gradient
    (tensor hooks are called per output), is no custom ``autograd.Function``'s node (a module's full
    backward pre-hook is a pre-hook on one of those and may change the gradient: the trace's own pre-hook
    runs after it) and no leaf's AccumulateGrad (whose tensor hooks are its leaf's, ``name``).

    The shared hook runs after the tensor hooks (``Tensor.register_hook``, which may change the
    gradient) but before Node pre-hooks, where the per-node pre-hook ran after them: a gradient that a
    caller's own ``grad_fn.register_prehook`` on a built-in node replaces is recorded as it arrived, not
    as replaced. Nothing in the app registers those (programs cannot: the language has no hooks)."""
    if name == "AccumulateGrad" or isinstance(fn, torch.autograd.function.BackwardCFunction):
        return False
    try:
        return len(fn._input_metadata) == 1
    except (AttributeError, RuntimeError):
        return False


def _grab(g, max_elems: int):
    """A copy of a gradient the engine handed a hook, taken at once (the engine may reuse its buffer): the
    copy with the strides and contiguity of the original, made a Snapshot by ``_settle`` after the pass;
    a Snapshot at once for what is not a small CPU tensor outside autograd."""
    if g is None:
        return None
    if g.requires_grad or not g.is_cpu or g.layout is not _STRIDED or g.numel() > max_elems:
        return Snapshot.of(g, max_elems)
    return g.clone(), g.stride(), g.is_contiguous()


def _settle_as(grabbed, value: Snapshot | None) -> Snapshot | None:
    """``_settle`` for the gradient of the value ``value`` (a leaf's .grad, or a gradient arriving at the
    autograd node that made ``value``): its shape, dtype and element count are the value's, read from its
    Snapshot rather than from the tensor (~5,000 instructions a gradient). Torch makes them so: the engine
    sums or casts every gradient to the shape and dtype of the value it is for before a node receives it
    (``validate_outputs``), tensor hooks may not change them, and a leaf's .grad has its leaf's."""
    if value is None or grabbed is None or type(grabbed) is Snapshot:
        return _settle(grabbed)
    raw, stride, contiguous = grabbed
    return Snapshot(value.shape, value.dtype, stride, contiguous, False, True, None, None, value.numel, False,
                    raw)


def _settle(grabbed) -> Snapshot | None:
    """The Snapshot of what ``_grab`` kept (the same fields ``Snapshot.of`` gives the gradient)."""
    if grabbed is None or type(grabbed) is Snapshot:
        return grabbed
    raw, stride, contiguous = grabbed
    dtype = _DTYPE_NAMES.get(raw.dtype)
    if dtype is None:
        dtype = _DTYPE_NAMES[raw.dtype] = str(raw.dtype).removeprefix("torch.")
    return Snapshot(tuple(raw.shape), dtype, stride, contiguous, False, True, None, None, raw.numel(), False,
                    raw)


# ----------------------------------------------------------------------------------------------------------
# Entry point


def trace(fn, *, backward: bool = True, grad_seed=None, max_snapshot_elems: int = 4096) -> Trace:
    """Run ``fn()`` under recording, then (unless ``backward=False``) its backward pass.

    ``fn`` returns a scalar tensor or ``(scalar_tensor, {name: tensor})``; names label their nodes.
    ``grad_seed`` is the gradient to start backward with (default: ones, which needs a scalar).
    Leaves' ``.grad`` are not zeroed, so tracing again shows accumulation.
    """
    # The trace allocates many small objects that all live until it ends: collecting garbage meanwhile
    # only rescans them (measured: a third of the time on a 3,000-node graph).
    with no_gc(keep=True):  # and they live as long as the Trace: no young pass rescans them after
        return _trace(fn, backward, grad_seed, max_snapshot_elems)


def _trace(fn, backward, grad_seed, max_snapshot_elems) -> Trace:
    rec = _Recorder(max_snapshot_elems)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(rec.pre_hook)
    try:
        post = torch.nn.modules.module.register_module_forward_hook(rec.post_hook, always_call=True)
    except TypeError:  # older torch without always_call
        post = torch.nn.modules.module.register_module_forward_hook(rec.post_hook)
    saved_log = SavedLog()
    try:
        with rec, saved_log:
            result = fn()
    finally:
        pre.remove()
        post.remove()

    output, names = _split_result(result)
    out_id = rec.node_for(output)
    _apply_names(rec, names)
    rec.nodes[out_id].is_output = True
    saved_memory = attach_saved(rec, saved_log)  # before backward frees what was saved

    events: list[BackwardEvent] = []
    if backward and output.requires_grad:
        events = _run_backward(rec, output, out_id, grad_seed)
    elif backward and grad_seed is None and output.numel() != 1:
        raise TraceError(f"backward needs a scalar output, got shape {tuple(output.shape)}: try .sum()")

    graph = _build_graph(rec)
    tr = Trace(
        nodes=rec.nodes, forward_order=list(rec.order), backward_order=[e.node_id for e in events],
        backward_events=events, output_id=out_id, graph=graph, modules=dict(rec.modules),
        saved_memory=saved_memory,
    )  # fmt: skip
    rec.tensor_of.clear()
    rec.edge_of.clear()
    return tr


def _split_result(result) -> tuple[torch.Tensor, dict]:
    names: dict = {}
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        result, names = result
    if not isinstance(result, torch.Tensor):
        raise TraceError(f"the traced function must return a tensor, got {type(result).__name__}")
    return result, names


def _apply_names(rec: _Recorder, names: dict):
    """Give user variable names to the nodes holding those tensors (the latest value of each)."""
    for name, t in names.items():
        if not isinstance(t, torch.Tensor):
            continue
        nid = rec.producer.get(id(t))
        if nid is None:
            continue
        if id(t) in rec.param_names:
            continue  # a module parameter keeps its path ("0.weight") as its name
        node = rec.nodes[nid]
        node.name = str(name)
        node.label = str(name)


def _run_backward(rec: _Recorder, output, out_id, grad_seed) -> list[BackwardEvent]:
    implicit = grad_seed is None
    if implicit:
        if output.numel() != 1:
            raise TraceError(f"backward needs a scalar output, got shape {tuple(output.shape)}: try .sum()")
        grad_seed = torch.ones_like(output)
    bw = _BackwardRecorder(rec)
    bw.install()
    try:
        # An explicit gradient makes torch import sympy on first use (0.3-0.6 s); a scalar needs none.
        output.backward(None if implicit else grad_seed)
        bw.finish()
    except RuntimeError as exc:  # e.g. the callable already ran backward through this graph itself
        raise TraceError(f"autograd could not run backward: {str(exc).splitlines()[0]}") from exc
    finally:
        bw.remove()
    if out_id not in bw.fn_of:  # the output is a leaf: backward only accumulates into it
        rec.nodes[out_id].grad = Snapshot.of(grad_seed, rec.max_elems)
    _fill_sole_consumer_grads(rec, bw.events, uses=bw.uses)
    return bw.events


def _fill_sole_consumer_grads(rec: _Recorder, events: list[BackwardEvent], order: list[str] | None = None,
                              uses: dict[str, int] | None = None):
    """Where autograd routed a gradient through a hidden internal node (the transpose inside ``linear``),
    the gradient sent to an input that has only this consumer equals that input's total gradient.
    ``uses``: how many op inputs read each node of ``order`` (the backward recorder counted them)."""
    nodes = rec.nodes
    if uses is None:
        uses = {}
        for nid in rec.order if order is None else order:
            for i in nodes[nid].inputs:
                uses[i] = uses.get(i, 0) + 1
    for ev in events:
        if ev.torch_name == "AccumulateGrad":
            continue
        grad_inputs = ev.grad_inputs
        count = len(grad_inputs)
        for k, inp in enumerate(nodes[ev.node_id].inputs):
            if k < count and grad_inputs[k] is None and uses.get(inp) == 1:
                grad_inputs[k] = nodes[inp].grad


def _graph_attrs(n: Node) -> dict:
    """The attributes of a node in the trace's graph: these fields of the Node, as one dict literal."""
    return {"kind": n.kind, "label": n.label, "name": n.name, "op": n.op, "torch_name": n.torch_name,
            "module": n.module, "inputs": n.inputs, "is_output": n.is_output, "value": n.value,
            "grad": n.grad, "call": n.call}


def _build_graph(rec: _Recorder) -> nx.DiGraph:
    return _data_flow_graph(rec.nodes, rec.order, rec.modules)


def _data_flow_graph(nodes: dict[str, Node], order: list[str], modules: dict[str, str],
                     keep: set[str] | None = None) -> nx.DiGraph:
    """The trace's graph: a node per id of ``order`` (``_graph_attrs``), an edge from each input to its
    consumer with the position it was first read at (``x * x`` is one edge, "arg" 0); with ``keep``, only
    edges from inputs in it. The same graph ``add_nodes_from`` / ``add_edges_from`` make (same node, edge
    and adjacency order, one data dict per edge shared by both directions), written into the DiGraph's
    own node / successor / predecessor dicts: networkx's generic adders cost ~6 µs a node and edge, half
    the graph's time at 10,000 nodes."""
    g = nx.DiGraph()
    node_attrs, succ, pred = g._node, g._succ, g._pred
    if node_attrs or succ or pred:  # (a networkx that builds differently: take its public way)
        return _data_flow_graph_nx(nodes, order, modules, keep)
    for nid in order:
        node_attrs[nid] = _graph_attrs(nodes[nid])
        succ[nid] = {}
        pred[nid] = {}
    for nid in order:
        into = pred[nid]
        for pos, src in enumerate(nodes[nid].inputs):
            if src not in into and (keep is None or src in keep):
                data = {"arg": pos}
                into[src] = data
                out = succ.get(src)
                if out is None:  # an input recorded nowhere in order: a bare node, as add_edges_from adds
                    node_attrs[src], out, pred[src] = {}, {}, {}
                    succ[src] = out
                out[nid] = data
    g.graph["modules"] = dict(modules)
    return g


def _data_flow_graph_nx(nodes: dict[str, Node], order: list[str], modules: dict[str, str],
                        keep: set[str] | None = None) -> nx.DiGraph:
    """``_data_flow_graph`` through networkx's public adders (the reference it must equal)."""
    g = nx.DiGraph()
    g.add_nodes_from([(nid, _graph_attrs(nodes[nid])) for nid in order])
    edges = {}
    for nid in order:
        for pos, src in enumerate(nodes[nid].inputs):
            if keep is None or src in keep:
                edges.setdefault((src, nid), pos)  # x * x is one edge, labelled with the first position
    g.add_edges_from((u, v, {"arg": pos}) for (u, v), pos in edges.items())
    g.graph["modules"] = dict(modules)
    return g


# ----------------------------------------------------------------------------------------------------------
# Programs: the interpreter runs the program under recording; each backward() it calls is a pass


@dataclass
class ProgramTrace:
    """A program traced: one Trace per iteration (a new graph that a backward pass ran through), the run's
    printed text and events, and each iteration's output value (the loss over iterations)."""

    iterations: list[Trace]
    run: Any  # the interpreter's RunResult (output, params, printed text, passes)
    losses: list[float | None]
    lines: list[int | None]  # the line of each iteration's last pass (None: implicit or forward only)

    @property
    def last(self) -> Trace:
        """The last iteration's trace."""
        return self.iterations[-1]


class _Group:
    """Nodes [start, end) of the recorder and the passes that ran through them: one iteration."""

    def __init__(self, start: int):
        self.start = start
        self.end = start
        self.passes: list[PassInfo] = []
        self.events: list[BackwardEvent] = []
        self.notes: list[dict] = []
        self.saved: SavedMemory | None = None
        self.roots: list[str] = []


class ProgramRecorder(Hooks):
    """The interpreter's hooks while tracing: lines, names, passes and events go into the recorder."""

    def __init__(self, rec: _Recorder, log: SavedLog):
        self.rec = rec
        self.log = log
        self.groups: list[_Group] = []
        self.segment = 0  # where the nodes of the next iteration start
        self.attached = 0  # nodes before this index have their saved tensors attached
        self.records = 0  # saved-tensor records before this index are attached
        self.versions: dict[str, int] = {}
        self.pending_notes: list[dict] = []

    def at_line(self, line: int) -> None:
        """Ops recorded from now on belong to `line`."""
        self.rec.line = line

    def bind(self, name: str, tensor) -> None:
        """Name the node holding `tensor` (c, c′, c″ for the versions of one name within an iteration)."""
        with _Paused(self.rec):  # the recorder's own torch calls are not the program's
            self._bind(name, tensor)

    def _bind(self, name: str, tensor) -> None:
        rec = self.rec
        nid = rec.producer.get(id(tensor))
        if nid is None or rec.index.get(nid, 0) < self.segment:
            nid = rec.node_for(tensor)
        node = rec.nodes[nid]
        if node.name and rec.index.get(nid, 0) >= self.segment:
            return  # an alias of a named value keeps its first name
        if id(tensor) in rec.param_names:
            return  # a module's parameter keeps its path
        count = self.versions.get(name, 0)
        self.versions[name] = count + 1
        label = name + ("′" * count if count < 4 else f"⁽{count}⁾")
        node.name = node.label = label


    def backward(self, run, root, kind: str, line: int):
        """Record one backward pass through the graph recorded so far."""
        with _Paused(self.rec):  # the pass and the recorder's own torch calls are not forward ops
            return self._backward(run, root, kind, line)

    def _backward(self, run, root, kind: str, line: int):
        rec = self.rec
        root_id = rec.node_for(root)
        root_index = rec.index[root_id]
        if self.groups and root_index < self.groups[-1].end:
            group = self.groups[-1]  # the same graph again (retain_graph): one more pass of that iteration
        else:
            group = _Group(self.segment)
            self.groups.append(group)
        group.end = len(rec.order)
        window = rec.order[group.start:group.end]
        if self.attached < group.end:
            memory = attach_saved(rec, self.log, rec.order[self.attached:group.end], self.records)
            if memory is not None:
                group.saved = memory if group.saved is None else group.saved
            self.attached = group.end
            self.records = len(self.log.records)
        bw = _BackwardRecorder(rec, window)
        bw.install()
        try:
            result = run()
            bw.finish()
        finally:
            bw.remove()
        _fill_sole_consumer_grads(rec, bw.events, window, bw.uses)
        group.passes.append(PassInfo(kind, root_id, len(group.events), len(bw.events), line))
        group.events.extend(bw.events)
        group.roots.append(root_id)
        group.notes.extend(self.pending_notes)
        self.pending_notes = []
        self.segment = len(rec.order)
        rec.new_segment()
        self.versions = {}
        return result

    def event(self, event) -> None:
        """An optimizer step or zero_grad belongs to the iteration of the last pass."""
        if event.kind in ("step", "zero_grad"):
            note = {"kind": event.kind, "line": event.line, "text": event.text}
            if self.groups and self.segment == len(self.rec.order):
                self.groups[-1].notes.append(note)
            else:
                self.pending_notes.append(note)


class _Paused:
    def __init__(self, rec: _Recorder):
        self.rec = rec

    def __enter__(self):
        self.was = self.rec.paused
        self.rec.paused = True

    def __exit__(self, *exc):
        self.rec.paused = self.was
        return False


def trace_program(program, overrides: dict | None = None, *, max_snapshot_elems: int = 4096,
                  cancelled=None) -> ProgramTrace:
    """Run a Program of the expression language under recording.

    Every backward pass the program runs (`backward()`, `torch.autograd.grad`) is recorded where it
    happens. A pass through a graph recorded after the previous pass starts a new iteration, so a training
    loop is N small graphs, not one N-fold graph. A program that calls no backward gets the implicit one
    of its scalar output, as a formula does. Raises ExprError for the program's errors.
    """
    with no_gc(keep=True):
        return _trace_program(program, overrides, max_snapshot_elems, cancelled)


def _trace_program(program, overrides, max_snapshot_elems, cancelled) -> ProgramTrace:
    rec = _Recorder(max_snapshot_elems)
    log = SavedLog()
    hooks = ProgramRecorder(rec, log)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(rec.pre_hook)
    post = torch.nn.modules.module.register_module_forward_hook(rec.post_hook, always_call=True)
    try:
        with rec, log:
            result = program.run(overrides=overrides, hooks=hooks, cancelled=cancelled)
    finally:
        pre.remove()
        post.remove()
    groups = hooks.groups
    output = result.output
    out_id = rec.node_for(output) if isinstance(output, torch.Tensor) else None
    tail = len(rec.order) > hooks.segment
    if not groups:
        group = _Group(0)
        group.end = len(rec.order)
        group.saved = attach_saved(rec, log)
        if out_id is not None and output.requires_grad and output.numel() == 1:
            events = _run_backward(rec, output, out_id, None)
            group.passes.append(PassInfo("implicit", out_id, 0, len(events), None))
            group.events = events
            group.roots.append(out_id)
        elif out_id is not None:
            group.roots.append(out_id)
        group.notes.extend(hooks.pending_notes)
        groups = [group]
    elif tail and out_id is not None and rec.index[out_id] >= hooks.segment:
        group = _Group(hooks.segment)  # a forward after the last backward pass (an evaluation, say)
        group.end = len(rec.order)
        group.roots.append(out_id)
        group.notes.extend(hooks.pending_notes)
        groups.append(group)
    if out_id is not None:
        rec.nodes[out_id].is_output = True
    traces = [_group_trace(rec, g) for g in groups]
    losses = [_loss_of(rec, g) for g in groups]
    lines = [g.passes[-1].line if g.passes else None for g in groups]
    rec.tensor_of.clear()
    rec.edge_of.clear()
    return ProgramTrace(traces, result, losses, lines)


def _group_trace(rec: _Recorder, group: _Group) -> Trace:
    """The Trace of one iteration: its window's named values and everything its passes ran through."""
    window = rec.order[group.start:group.end]
    targets = list(group.roots) + [n for n in window if rec.nodes[n].name]
    keep: set[str] = set()
    outside: set[str] = set()  # values made before this iteration: inputs from outside, shown as leaves
    stack = list(targets)
    while stack:
        nid = stack.pop()
        if nid in keep:
            continue
        keep.add(nid)
        if rec.index[nid] < group.start and rec.nodes[nid].inputs:
            outside.add(nid)  # its history belongs to an earlier iteration's graph
            continue
        stack.extend(rec.nodes[nid].inputs)
    order = [n for n in rec.order if n in keep]
    nodes = {n: rec.nodes[n] for n in order}
    for nid in outside:
        nodes[nid] = replace(nodes[nid], inputs=[], kind="leaf", operands=None)
    root = group.roots[-1] if group.roots else (order[-1] if order else "")
    for nid in order:
        nodes[nid].is_output = nid == root
    graph = _data_flow_graph(nodes, order, rec.modules, keep)
    events: list[BackwardEvent] = []
    passes = []
    for p in group.passes:
        chunk = [e for e in group.events[p.first:p.first + p.count] if e.node_id in keep]
        passes.append(PassInfo(p.kind, p.root, len(events), len(chunk), p.line))
        events.extend(chunk)
    return Trace(
        nodes=nodes, forward_order=order, backward_order=[e.node_id for e in events], backward_events=events,
        output_id=root, graph=graph, modules=dict(rec.modules), saved_memory=group.saved, passes=passes,
        events=list(group.notes),
    )  # fmt: skip


def _loss_of(rec: _Recorder, group: _Group) -> float | None:
    if not group.roots:
        return None
    value = rec.nodes[group.roots[-1]].value
    if value.numel != 1 or value.data is None:
        return None
    v = float(value.data.reshape(-1)[0])
    return v if np.isfinite(v) else None
