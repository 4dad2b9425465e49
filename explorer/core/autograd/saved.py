"""What autograd keeps for backward: the tensors each node's ``grad_fn`` saved, and what they cost.

Nothing here knows which op saves what. During the traced forward, torch's own
``torch.autograd.graph.saved_tensors_hooks`` hand us every tensor autograd saves (its pack hook); after
the forward, each op node's ``grad_fn`` (and the hidden autograd nodes only it reaches, such as the
transpose inside ``linear``) is asked for its ``_raw_saved_*`` attributes, and the ones packed by our hook
name the role of each saved tensor ("input 0", "output", or torch's own name: "mat2", "result1").

A saved tensor whose pack hook is someone else's (``torch.utils.checkpoint``'s) is not kept: its
region of the forward is recomputed during backward. It is listed with ``recomputed=True`` and 0 bytes.

Memory counts storages: the same storage saved by two nodes (or as two views) counts once. A saved
tensor that is a model weight (a view of a trainable leaf) costs nothing extra: it is flagged ``param``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use: the window's import must not wait for it
    import torch

__all__ = [
    "SavedLog", "SavedMemory", "SavedTensor", "alive_by_step", "attach_saved", "hooks_total", "node_bytes",
    "param_bytes", "reason_for", "recompute_steps", "saved_by_module",
]


@dataclass
class SavedTensor:
    """One tensor a node's ``grad_fn`` keeps for its backward."""

    role: str  # "input 0" | "output" | "input 1 (view)" | torch's attribute name ("mat2", "result1")
    attr: str  # the grad_fn attribute without "_saved_": "self", "result", "mat2"
    grad_fn: str  # the autograd node that holds it: "MmBackward0"
    shape: tuple
    dtype: str
    bytes: int  # elements x element size of this tensor (the storage behind it may be larger)
    storage: int = -1  # equal numbers: one block of memory (renumbered 0.. per trace)
    param: bool = False  # a model weight (or a view of one): kept anyway, costs nothing extra
    shared: bool = False  # the same storage is saved by another node too (counted once)
    recomputed: bool = False  # saved by another hook (activation checkpointing): not kept, recomputed

    def to_json(self) -> dict:
        """The JSON form: role, shape, dtype, bytes, then the details."""
        return {
            "role": self.role, "shape": list(self.shape), "dtype": self.dtype, "bytes": self.bytes,
            "attr": self.attr, "grad_fn": self.grad_fn, "storage": self.storage, "param": self.param,
            "shared": self.shared, "recomputed": self.recomputed,
        }  # fmt: skip


@dataclass
class SavedMemory:
    """What a trace's graph keeps for backward, in bytes of distinct storages."""

    total: int = 0  # every storage autograd keeps (the saved_tensors_hooks count)
    activations: int = 0  # those that are not model weights: the memory training needs beyond inference
    params: int = 0  # weights saved (kept anyway)
    unattributed: int = 0  # packed, but no recorded node's grad_fn names it
    recomputed: int = 0  # saved tensors left to checkpointing (how many, not bytes)
    storage_bytes: dict[int, int] = field(default_factory=dict)  # storage number -> bytes
    param_storages: set[int] = field(default_factory=set)

    def to_json(self) -> dict:
        """Totals as a JSON dict."""
        return {
            "total": self.total, "activations": self.activations, "params": self.params,
            "unattributed": self.unattributed, "recomputed": self.recomputed,
        }  # fmt: skip


class _Packed:
    """What our pack hook returns: the saved tensor (detached, so an output does not keep its own
    grad_fn alive in a cycle), its version for torch's in-place check, its record number and the log whose
    hook packed it."""

    __slots__ = ("index", "log", "tensor", "version")

    def __init__(self, tensor: torch.Tensor, index: int, log: SavedLog):
        self.tensor = tensor.detach()
        self.version = tensor._version
        self.index = index
        self.log = log


@dataclass(slots=True)  # (one a save: no __dict__ to make)
class _Record:
    ref: weakref.ref  # the tensor torch passed to the pack hook
    shape: tuple
    dtype: str
    nbytes: int
    storage_key: tuple
    storage_nbytes: int
    data_ptr: int


def _storage_of(t: torch.Tensor) -> tuple[tuple, int, int]:
    """(key, bytes, data pointer) of the memory behind ``t``; its own id for tensors without storage."""
    try:
        s = t.untyped_storage()
        if t.is_cpu:  # (what t.device says for a CPU tensor, without making a device object)
            return ("cpu", None, s._cdata), s.nbytes(), t.data_ptr()  # one StorageImpl: one key
        device = t.device
        return (device.type, device.index, s._cdata), s.nbytes(), t.data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):
        return ("id", id(t)), t.numel() * t.element_size(), id(t)


_DTYPE_NAMES: dict = {}  # torch.float32 -> "float32"


class SavedLog:
    """Context manager: torch's saved-tensor hooks for the traced forward, recording every save."""

    def __init__(self) -> None:
        self.records: list[_Record] = []
        self._ctx = None
        self.active = False

    def pack(self, t: torch.Tensor) -> _Packed:
        """Pack hook: note the tensor, keep it as autograd would."""
        key, snbytes, ptr = _storage_of(t)
        dtype = _DTYPE_NAMES.get(t.dtype)
        if dtype is None:  # str() of a dtype is slow: once per dtype
            dtype = _DTYPE_NAMES[t.dtype] = str(t.dtype).removeprefix("torch.")
        records = self.records
        # (positional, in the field order: ref, shape, dtype, nbytes, storage_key, storage_nbytes, data_ptr)
        nbytes = t.numel() * t.element_size()
        records.append(_Record(weakref.ref(t), tuple(t.shape), dtype, nbytes, key, snbytes, ptr))
        return _Packed(t, len(records) - 1, self)

    def unpack(self, p: _Packed) -> torch.Tensor:
        """Unpack hook: the tensor, after torch's own check that no in-place op changed it since."""
        if p.tensor._version != p.version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: a tensor of shape {list(p.tensor.shape)} is at version {p.tensor._version}; "
                f"expected version {p.version} instead"
            )
        return p.tensor

    def __enter__(self):
        import torch

        if torch._C._autograd._saved_tensors_hooks_is_enabled():  # some transforms forbid hooks
            self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
            self._ctx.__enter__()
            self.active = True
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
            self._ctx = None
        return False


def attach_saved(rec, log: SavedLog, order: list[str] | None = None,
                 first_record: int = 0) -> SavedMemory | None:
    """Fill ``node.saved`` for every op node of the forward recorder ``rec`` from ``log`` (call it after
    the forward, before backward frees what was saved); return the totals (None when hooks were off).

    ``order`` limits it to some nodes and ``first_record`` to the saves from that record on: a program
    that runs backward several times attaches each pass's part of the graph before that pass."""
    if not log.active:
        return None
    order = rec.order if order is None else order
    nodes, edge_of, tensor_of = rec.nodes, rec.edge_of, rec.tensor_of
    owner_of_fn: dict[int, str] = {}  # id(grad_fn) -> node id; the first node made by it owns it
    for nid in order:
        edge = edge_of.get(nid)
        if edge is not None:
            owner_of_fn.setdefault(id(edge[0]), nid)
    numbers: dict[tuple, int] = {}
    memory = SavedMemory()
    storage_bytes = memory.storage_bytes
    places: dict[str, tuple] = {}  # node id -> (storage key, data pointer) of its tensor, once each
    param_keys = {_place(tensor_of, n, places)[0] for n in order if nodes[n].kind == "param"}
    holders: dict[int, set[str]] = {}  # storage number -> nodes saving it
    claimed: set[int] = set()
    made: list[SavedTensor] = []
    records = log.records
    for nid in order:
        node = nodes[nid]
        if node.kind != "op":
            continue
        saved = node.saved = []
        edge = edge_of.get(nid)
        if edge is None or owner_of_fn.get(id(edge[0])) != nid:
            continue
        for fn in _owned_fns(edge[0], owner_of_fn, claimed):
            fn_name = type(fn).__name__
            for attr, raw in _raw_saved(fn):
                packed = raw.data  # what the pack hook returned (our _Packed), or the tensor without hooks
                if type(packed) is not _Packed or packed.log is not log:
                    hook = raw.unpack_hook
                    if hook is not None and getattr(hook, "__self__", None) is not log:
                        saved.append(SavedTensor(attr, attr, fn_name, (), "", 0, -1, False, False, True))
                        memory.recomputed += 1
                    continue  # (else an undefined optional tensor, no bias, or saved without our hooks)
                if packed.index < first_record:
                    continue  # saved before this pass's part of the program began
                r = records[packed.index]
                key = r.storage_key
                number = numbers.setdefault(key, len(numbers))
                storage_bytes[number] = r.storage_nbytes
                holding = holders.get(number)
                if holding is None:
                    holders[number] = {nid}
                else:
                    holding.add(nid)
                is_param = key in param_keys
                if is_param:
                    memory.param_storages.add(number)
                role = _role(rec, node, nid, r, attr, places)
                st = SavedTensor(role, attr, fn_name, r.shape, r.dtype, r.nbytes, number, is_param)
                saved.append(st)
                made.append(st)
    for s in made:
        s.shared = len(holders[s.storage]) > 1
    all_storages = {r.storage_key: r.storage_nbytes for r in log.records[first_record:]}
    memory.total = sum(all_storages.values())
    memory.params = sum(all_storages[k] for k in param_keys if k in all_storages)
    memory.activations = memory.total - memory.params
    attributed = set(numbers)
    memory.unattributed = sum(b for k, b in all_storages.items() if k not in attributed)
    return memory


def hooks_total(fn) -> int:
    """Run ``fn()`` under a bare ``saved_tensors_hooks`` and return the bytes of the distinct storages it
    saved: the reference count the tracer's total must equal (kept alive until the count is taken)."""
    sizes: dict[tuple, int] = {}
    kept = []

    def pack(t):
        key, nbytes, _ = _storage_of(t)
        sizes[key] = nbytes
        kept.append(t)
        return t

    import torch

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(sizes.values())


def alive_by_step(timeline) -> list[int]:
    """Bytes of saved activations (weights left out) alive at each step 0..length of a Timeline: a
    storage is alive from the forward step of the first node that saved it until the backward step of
    the last of them (autograd frees what a node saved once that node's backward has run)."""
    tr = timeline.trace
    memory: SavedMemory | None = getattr(tr, "saved_memory", None)
    deltas = [0] * (timeline.length + 2)
    if memory is None:
        return [0] * (timeline.length + 1)
    born: dict[int, int] = {}
    freed: dict[int, int] = {}
    never_freed: set[int] = set()
    for nid in tr.forward_order:
        node = tr.nodes[nid]
        for s in node.saved or ():
            if s.recomputed or s.storage in memory.param_storages:
                continue
            born[s.storage] = min(born.get(s.storage, 10**12), timeline.value_at[nid])
            step = timeline.step_of("backward", nid)
            if step is None:
                never_freed.add(s.storage)
            else:
                freed[s.storage] = max(freed.get(s.storage, 0), step)
    for number, at in born.items():
        deltas[at] += memory.storage_bytes[number]
        if number not in never_freed and number in freed:
            deltas[freed[number]] -= memory.storage_bytes[number]
    out, alive = [], 0
    for k in range(timeline.length + 1):
        alive += deltas[k]
        out.append(alive)
    return out


def node_bytes(node) -> int:
    """Bytes a node's grad_fn keeps beyond the weights (each storage once; 0 when nothing)."""
    seen: dict[int, int] = {}
    for s in node.saved or ():
        if not s.recomputed and not s.param:
            seen[s.storage] = max(seen.get(s.storage, 0), s.bytes)
    return sum(seen.values())


def saved_by_module(tr, depth: int = 2) -> dict[str, int]:
    """Activation bytes saved for backward per module, grouped by the first ``depth`` parts of the module
    path ("blocks.0"); a storage counts in the group of the first node that saved it, so the groups add
    up to the trace's activations. Ops outside any module are under "(top level)"."""
    memory: SavedMemory | None = getattr(tr, "saved_memory", None)
    out: dict[str, int] = {}
    if memory is None:
        return out
    counted: set[int] = set()
    for nid in tr.forward_order:
        node = tr.nodes[nid]
        group = ".".join(node.module.split(".")[:depth]) if node.module else "(top level)"
        for s in node.saved or ():
            if s.recomputed or s.storage in memory.param_storages or s.storage in counted:
                out.setdefault(group, 0)
                continue
            counted.add(s.storage)
            out[group] = out.get(group, 0) + memory.storage_bytes[s.storage]
    return out


def recompute_steps(timeline, depth: int = 2) -> dict[str, int]:
    """Module group ("blocks.0") -> the Timeline step at which backward first reaches one of its nodes
    whose saved tensors were left to activation checkpointing: the moment torch runs that part of the
    forward again to get them back."""
    tr = timeline.trace
    out: dict[str, int] = {}
    for k, (direction, nid) in enumerate(timeline.events, start=1):
        node = tr.nodes[nid]
        if direction == "backward" and any(s.recomputed for s in node.saved or ()):
            group = ".".join(node.module.split(".")[:depth]) if node.module else "(top level)"
            out.setdefault(group, k)
    return out


def param_bytes(tr) -> tuple[int, int]:
    """(bytes of the traced graph's weights, bytes of their gradients once backward has run)."""
    weights = grads = 0
    for node in tr.nodes.values():
        if node.kind != "param":
            continue
        size = node.value.numel * _itemsize(node.value.dtype)
        weights += size
        grads += size if node.grad is not None else 0
    return weights, grads


def reason_for(node) -> str:
    """The op table's one line on why this op's backward keeps what it keeps ("" when unknown)."""
    from explorer.core.lang.ops import find_op

    spec = find_op(node.op) or find_op(node.torch_name)
    return spec.saved_reason if spec is not None else ""


def _itemsize(dtype: str) -> int:
    import torch

    t = getattr(torch, dtype, None)
    return t.itemsize if isinstance(t, torch.dtype) else 4


# ------------------------------------------------------------------------------------------ helpers


def _owned_fns(fn, owner_of_fn: dict[int, str], claimed: set[int]) -> list:
    """``fn`` and the hidden autograd nodes reached from it before any recorded node's own grad_fn."""
    out, stack = [], [fn]
    while stack:
        f = stack.pop()
        if id(f) in claimed:
            continue
        claimed.add(id(f))
        out.append(f)
        for nf, _ in f.next_functions:
            if nf is not None and id(nf) not in owner_of_fn and id(nf) not in claimed:
                if type(nf).__name__ != "AccumulateGrad":
                    stack.append(nf)
    return out


_SAVED_SLOTS: dict[type, tuple[str, ...]] = {}  # autograd node type -> its "_raw_saved_*" attributes


def _raw_saved(fn) -> list[tuple[str, object]]:
    """(attribute name, SavedTensor) for each tensor slot ``fn`` saved, in attribute order."""
    out = []
    names = _SAVED_SLOTS.get(type(fn))
    if names is None:  # dir() is slow and the same for every node of one type: once per type
        names = _SAVED_SLOTS[type(fn)] = tuple(n for n in dir(fn) if n.startswith("_raw_saved_"))
    for name in names:
        try:
            raw = getattr(fn, name)
        except RuntimeError:  # freed already
            continue
        attr = name.removeprefix("_raw_saved_")
        if isinstance(raw, (list, tuple)):  # custom Functions, ops saving a list of tensors
            out.extend((f"{attr}[{i}]", r) for i, r in enumerate(raw))
        else:
            out.append((attr, raw))
    return out


def _place(tensor_of: dict, nid: str, places: dict) -> tuple:
    """(storage key, data pointer) of node ``nid``'s tensor, remembered in ``places``."""
    place = places.get(nid)
    if place is None:
        key, _, ptr = _storage_of(tensor_of[nid])
        place = places[nid] = (key, ptr)
    return place


def _role(rec, node, nid: str, r: _Record, attr: str, places: dict | None = None) -> str:
    """How the saved tensor relates to the node: its output, one of its inputs, a view of one, or
    (an intermediate of the op) torch's attribute name. One tensor passed as several inputs (``h * h``)
    is "inputs 0, 1 (one tensor)": which slot holds which position is not ours to guess."""
    saved = r.ref()
    tensor_of = rec.tensor_of
    inputs = node.inputs
    if saved is not None:  # the same tensor object: the output first, then the inputs in order
        is_output = tensor_of[nid] is saved
        positions = [k for k, i in enumerate(inputs) if tensor_of[i] is saved]
        if is_output:
            return "output"
        if len(positions) > 1:
            return f"inputs {', '.join(map(str, positions))} (one tensor)"
        if positions:
            return f"input {positions[0]}"
    places = {} if places is None else places
    wanted = (r.storage_key, r.data_ptr)  # a view: the same memory from the same first element
    if _place(tensor_of, nid, places) == wanted:
        return "output (view)"
    for k, i in enumerate(inputs):
        if _place(tensor_of, i, places) == wanted:
            return f"input {k} (view)"
    return attr
