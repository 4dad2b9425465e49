"""The trusted reference for the corpus: run one snippet of ``tests/corpus/`` under plain CPython and torch
and print, as one JSON object, what ``python -m explorer grad FILE --json`` must report for it.

    python tests/corpus_reference.py tests/corpus/*.py             # {snippet stem: reference record}
    python tests/corpus_reference.py --as grad tests/corpus/*.py   # each shaped like `grad --json`'s
    python tests/corpus_reference.py --as graph tests/corpus/*.py  # each shaped like `graph --format json`'s
    python tests/corpus_reference.py --as grad,graph tests/corpus/*.py  # {shape: {stem: shaped record}}

Only the tests run this, and only on the project's own snippets (runpy on a trusted file); the app never
runs a program this way. The record holds:

- ``output``: {"name", "value"}: the tensor (or micrograd Value) ``backward()`` was last called on, named by
  the module-level variable bound to it (None when no variable is); a program that never calls backward
  reports its last assigned scalar instead.
- ``grads``: every leaf that requires grad, with its final ``.grad``: ``nn.Module`` parameters as
  ``variable.named_parameters path``, the Values inside micrograd's Neuron/Layer/MLP by the expression that
  reaches them (``model.layers[0].neurons[1].w[2]``), plain tensors and micrograd leaf Values by variable
  name, and leaves held in a module-level list or tuple as ``name[i]``; a leaf reachable several ways gets
  the first of these (a module parameter keeps its module path even when a loop variable still holds it).
- ``saved_bytes``: bytes of the distinct storages torch's ``saved_tensors_hooks`` packed before the program's
  first pass (backward or ``torch.autograd.grad``) began: what the graph that pass walks keeps, counted as
  ``explorer/core/autograd/saved.py`` counts (each storage once); ``saved_bytes_all``: the same over the
  whole run (ops after the last backward, such as a print of ``d / a``, save too but no pass walks them);
  ``roots``: how many distinct tensors backward or ``torch.autograd.grad`` started from; ``single_iteration``:
  a torch program (not micrograd) whose passes all start from one tensor, the programs whose saved bytes
  the tests compare.
- ``stdout``: what the program printed.

PyPI's micrograd 0.1.0 (the reference engine) lacks what the micrograd lecture's Value adds: ``label=``,
``.tanh()`` and ``.exp()``. ``extend_micrograd`` adds those three with the lecture's derivatives (1 - tanh²,
exp) before a snippet runs, so the lecture's programs run as written.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import runpy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def extend_micrograd() -> None:
    """Give micrograd 0.1.0's Value the micrograd lecture's ``label=``, ``tanh`` and ``exp``."""
    from micrograd import engine

    value = engine.Value
    if getattr(value, "_corpus_extended", False):
        return
    plain_init = value.__init__

    def __init__(self, data, _children=(), _op="", label=""):
        plain_init(self, data, _children, _op)
        self.label = label

    def tanh(self):
        t = math.tanh(self.data)
        out = value(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t**2) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    value.__init__ = __init__
    if not hasattr(value, "tanh"):
        value.tanh = tanh
    if not hasattr(value, "exp"):
        value.exp = exp
    value._corpus_extended = True


def to_plain(t):
    """A tensor as a number or nested lists (float64), a micrograd grad as a float; None stays None."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.is_floating_point():
            t = t.to(torch.float64)
        return t.item() if t.dim() == 0 else t.tolist()
    return float(t)


def _is_value(v) -> bool:
    return type(v).__module__ == "micrograd.engine" and type(v).__name__ == "Value"


def _is_micrograd_module(v) -> bool:
    return type(v).__module__ == "micrograd.nn"


def _micrograd_params(obj) -> list[tuple[str, object]]:
    """(path, Value) of micrograd's Neuron/Layer/MLP parameters: ``.layers[0].neurons[1].w[2]``, ``.b``."""
    out: list[tuple[str, object]] = []
    for key, item in vars(obj).items():
        if _is_value(item):
            out.append((f".{key}", item))
        elif isinstance(item, list):
            for i, x in enumerate(item):
                if _is_value(x):
                    out.append((f".{key}[{i}]", x))
                elif _is_micrograd_module(x):
                    out.extend((f".{key}[{i}]{p}", v) for p, v in _micrograd_params(x))
    return out


def collect_grads(ns: dict) -> dict:
    """Every leaf that requires grad, by name, with its final gradient. A leaf reachable several ways gets
    the first of: its module path (``model.fc1.weight``, ``model.layers[0].neurons[1].w[2]``), a plain
    variable bound to it, an item of a module-level list or tuple (``inputs[0]``)."""
    out: dict = {}
    seen: set[int] = set()

    def add(name: str, v) -> None:
        if id(v) in seen:
            return
        if isinstance(v, torch.Tensor) and v.requires_grad and v.is_leaf:
            seen.add(id(v))
            out[name] = to_plain(v.grad)
        elif _is_value(v) and not v._prev:
            seen.add(id(v))
            out[name] = float(v.grad)

    names = [(n, v) for n, v in ns.items() if not n.startswith("__")]
    for name, v in names:
        if isinstance(v, torch.nn.Module):
            for path, p in v.named_parameters():
                add(f"{name}.{path}", p)
        elif _is_micrograd_module(v):
            for path, p in _micrograd_params(v):
                add(f"{name}{path}", p)
    for name, v in names:
        add(name, v)
    for name, v in names:
        if isinstance(v, list | tuple):
            for i, item in enumerate(v):
                add(f"{name}[{i}]", item)
    return out


def _is_scalar(v) -> bool:
    if isinstance(v, torch.Tensor):
        return v.numel() == 1
    return _is_value(v) or (isinstance(v, int | float) and not isinstance(v, bool))


def last_assigned_scalar(source: str, ns: dict) -> str | None:
    """The module-level name assigned last in the source (outside def and class) whose final value is a
    scalar: the output of a program that never calls backward."""
    found = None
    stack = list(reversed(ast.parse(source).body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and _is_scalar(ns.get(n.id)):
                    found = n.id
        for field in ("body", "orelse", "finalbody"):
            stack.extend(reversed(getattr(node, field, []) or []))
    return found


def storage_key(t: torch.Tensor) -> tuple[tuple, int]:
    """(key, bytes) of the memory behind ``t``, the way explorer/core/autograd/saved.py counts a saved
    tensor: one key per storage (two views of it count once), its whole size in bytes."""
    try:
        s = t.untyped_storage()
        return (t.device.type, t.device.index, s._cdata), s.nbytes()
    except (RuntimeError, NotImplementedError, TypeError):
        return ("id", id(t)), t.numel() * t.element_size()


def run_snippet(path: str | Path) -> dict:
    """Run the snippet under CPython with backward, torch.autograd.grad and micrograd's backward
    watched and torch's saved-tensor hooks counting; return the reference record."""
    path = Path(path)
    source = path.read_text()
    uses_micrograd = "from micrograd" in source or "import micrograd" in source
    if uses_micrograd:
        extend_micrograd()
    called: list = []  # the tensors (or Values) backward was called on, in order
    roots: list = []  # every tensor a pass started from (backward and torch.autograd.grad)

    tensor_backward = torch.Tensor.backward
    autograd_grad = torch.autograd.grad

    def backward(self, *args, **kwargs):
        called.append(self)
        roots.append(self)
        return tensor_backward(self, *args, **kwargs)

    def grad(outputs, *args, **kwargs):
        roots.extend(outputs if isinstance(outputs, list | tuple) else [outputs])
        return autograd_grad(outputs, *args, **kwargs)

    torch.Tensor.backward = backward
    torch.autograd.grad = grad
    if uses_micrograd:
        from micrograd import engine

        value_backward = engine.Value.backward

        def micrograd_backward(self):
            called.append(self)
            roots.append(self)
            return value_backward(self)

        engine.Value.backward = micrograd_backward
    ns: dict = {}
    printed = io.StringIO()
    before_first_pass: dict[tuple, int] = {}  # storage key -> bytes, packed before the first pass began
    everything: dict[tuple, int] = {}
    kept = []  # every packed tensor stays alive until counted, so no storage key is reused meanwhile

    def pack(t):
        key, nbytes = storage_key(t)
        everything[key] = nbytes
        if not roots:
            before_first_pass[key] = nbytes
        kept.append(t)
        return t

    try:
        with contextlib.redirect_stdout(printed), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ns.update(runpy.run_path(str(path), run_name="__main__"))
    finally:
        torch.Tensor.backward = tensor_backward
        torch.autograd.grad = autograd_grad
        if uses_micrograd:
            engine.Value.backward = value_backward
    if called:
        root = called[-1]
        names = [n for n, v in ns.items() if v is root and not n.startswith("__")]
        name = names[0] if len(names) == 1 else None
    else:
        name = last_assigned_scalar(source, ns)
        root = ns.get(name)
    value = root.data if _is_value(root) else to_plain(root) if isinstance(root, torch.Tensor) else root
    distinct = len({id(r) for r in roots})
    return {
        "output": {"name": name, "value": value},
        "grads": collect_grads(ns),
        "saved_bytes": None if uses_micrograd else sum(before_first_pass.values()),
        "saved_bytes_all": None if uses_micrograd else sum(everything.values()),
        "roots": distinct,
        "backward_calls": len(called),
        "single_iteration": not uses_micrograd and distinct == 1,
        "stdout": printed.getvalue(),
    }


def shaped(record: dict, shape: str | None) -> dict:
    """The record, or the part of it the app's command prints: "grad" (`grad --json`: output and grads)
    or "graph" (`graph --format json`: saved_bytes)."""
    if shape == "grad":
        return {"output": record["output"], "grads": record["grads"]}
    if shape == "graph":
        return {"saved_bytes": record["saved_bytes"]}
    return record


def main(argv: list[str]) -> int:
    """Run each snippet named in ``argv`` in turn (``--as grad|graph`` picks the shape) and print
    {stem: record}; a snippet that raises gets {"error": "..."}. Several shapes (``--as grad,graph``):
    {shape: {stem: record}} from the one run."""
    args = list(argv)
    shapes: list[str | None] = [None]
    if "--as" in args:
        k = args.index("--as")
        shapes = args[k + 1].split(",")
        del args[k : k + 2]
    out: dict[str | None, dict] = {shape: {} for shape in shapes}
    for name in args:
        try:
            record = run_snippet(name)
            for shape in shapes:
                out[shape][Path(name).stem] = shaped(record, shape)
        except Exception as exc:  # a broken snippet is reported, the others still run
            for shape in shapes:
                out[shape][Path(name).stem] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out if len(shapes) > 1 else out[shapes[0]]))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
