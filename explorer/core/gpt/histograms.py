"""Activation and gradient histograms of a GPT run, per transformer block, every `hist_every` steps.

On the first step and every `hist_every`-th step (TrainSettings; 0: never) the trainer records, for each
block in order:

    activation   the values of the block's output (the residual stream after the block) on the step's
                 first micro-batch, before the update. They come from a separate forward pass without
                 gradients and in eval mode (no dropout), so recording changes nothing the training does
                 (its RNG, its gradients, its threads) and gives the same figures with `batch_split` on
                 or off.
    gradient     the values of the gradients of all the block's parameters together, summed over the
                 step's micro-batches (and parts), before gradient clipping.

Each is `BINS` equal bins over that record's own range [min, max] of the finite values (`edges`, bins +
1 numbers), the count in each bin (`counts`, the same binning as `torch.histc` over that range) and the
count of values that are NaN or infinite (`nonfinite`), which no bin holds. All of it is computed on the
model's device without a host transfer; one transfer happens when the record is built.

A record is a `{"type": "histograms", "step": ..}` dict of JSON-able lists (`KEYS`); `StepHistograms`
is its validated form, and a run's folder keeps them in `histograms.safetensors` (`to_bytes` /
`from_bytes`: tensors named as the keys, one row per recorded step; a broken or hostile file gives no
records, a bad row is left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from explorer.core.speed import few_threads_for

if TYPE_CHECKING:  # torch is imported where it is used: the app's views read records without it
    import torch

BINS = 64
KINDS = ("activation", "gradient")
KEYS = tuple(f"{kind}_{part}" for kind in KINDS for part in ("edges", "counts", "nonfinite"))
FILE_NAME = "histograms.safetensors"
FORMAT = "autograd-explorer histograms"
VERSION = "1"
MAX_BLOCKS = 1024
MAX_BINS = 1024
MAX_COUNT = 2**50  # more values in one block's histogram than any step has: a broken or hostile record
MAX_NUMBERS = 4_000_000  # numbers a run keeps at most (thinned beyond), about 32 MB


def due(step: int, every: int) -> bool:
    """Whether optimizer step `step` (1-based) records histograms."""
    return every > 0 and (step == 1 or step % every == 0)


def histogram(tensors: list[torch.Tensor], bins: int = BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """(range [lo, hi] as a float32 tensor, counts int64 of bins + 1: the last counts non-finite values)
    of the values of `tensors` taken together, on their device, without a host transfer.

    The range is that of the finite values (min - 1, max + 1 when they are all equal, as torch.histc;
    [0, 1] when there is none); a value's bin is floor((v - lo) * bins / (hi - lo)), the maximum in the
    last bin, which is torch.histc's binning over that range.
    """
    import torch

    flats = [t.detach().reshape(-1).float() for t in tensors if t is not None and t.numel()]
    if not flats:
        return torch.tensor([0.0, 1.0]), torch.zeros(bins + 1, dtype=torch.long)
    device = flats[0].device
    finites = [torch.isfinite(f) for f in flats]
    # The ends of the finite values: non-finite ones count as +inf for the minimum, -inf for the maximum.
    inf = torch.tensor(math.inf, device=device)
    pairs = list(zip(flats, finites, strict=True))
    lows = torch.stack([torch.where(ok, f, inf).amin() for f, ok in pairs]).amin()
    highs = torch.stack([torch.where(ok, f, -inf).amax() for f, ok in pairs]).amax()
    none = lows > highs  # no finite value at all
    lo = torch.where(none, torch.zeros_like(lows), lows)
    hi = torch.where(none, torch.ones_like(highs), highs)
    same = lo == hi
    lo, hi = torch.where(same, lo - 1, lo), torch.where(same, hi + 1, hi)
    counts = torch.zeros(bins + 1, dtype=torch.long, device=device)
    for f, finite in pairs:
        pos = torch.nan_to_num((f - lo) * bins / (hi - lo), nan=0.0, posinf=bins - 1, neginf=0.0)
        index = torch.where(finite, pos.long().clamp_(0, bins - 1), bins)
        if device.type == "cpu":  # one pass, no ones tensor (bincount would sync a GPU for its size)
            counts += torch.bincount(index, minlength=bins + 1)
        else:
            counts.scatter_add_(0, index, torch.ones_like(index))
    return torch.stack([lo, hi]), counts


@dataclass(frozen=True)
class StepHistograms:
    """The histograms of one recorded step, validated: per kind, arrays with one row per block."""

    step: int
    edges: dict[str, np.ndarray]  # kind -> (blocks, bins + 1) float64, strictly increasing, finite
    counts: dict[str, np.ndarray]  # kind -> (blocks, bins) int64 >= 0
    nonfinite: dict[str, np.ndarray]  # kind -> (blocks,) int64 >= 0

    @property
    def blocks(self) -> int:
        return int(self.counts[KINDS[0]].shape[0])

    @property
    def bins(self) -> int:
        return int(self.counts[KINDS[0]].shape[1])

    def numbers(self) -> int:
        """How many numbers the record holds (for the run's memory budget)."""
        return 2 * self.blocks * (2 * self.bins + 2)

    def to_record(self) -> dict:
        """The JSON-able record (lists) this came from."""
        out = {"type": "histograms", "step": self.step}
        for kind in KINDS:
            out[f"{kind}_edges"] = self.edges[kind].tolist()
            out[f"{kind}_counts"] = self.counts[kind].tolist()
            out[f"{kind}_nonfinite"] = self.nonfinite[kind].tolist()
        return out


def from_arrays(step, arrays: dict) -> StepHistograms | None:
    """A validated StepHistograms from a step and arrays (or nested lists) named as KEYS; None when
    anything is wrong: missing, wrong shape or type, edges not finite or not increasing, negative or
    huge counts, blocks or bins beyond MAX_BLOCKS / MAX_BINS."""
    try:
        if isinstance(step, bool) or int(step) != step or not 1 <= int(step) < 2**53:
            return None
        edges, counts, nonfinite = {}, {}, {}
        shape = None
        for kind in KINDS:
            e = np.asarray(arrays[f"{kind}_edges"], dtype=np.float64)
            c = np.asarray(arrays[f"{kind}_counts"])
            n = np.asarray(arrays[f"{kind}_nonfinite"])
            if e.ndim != 2 or c.ndim != 2 or n.ndim != 1:
                return None
            blocks, bins = c.shape
            if not (1 <= blocks <= MAX_BLOCKS and 1 <= bins <= MAX_BINS):
                return None
            if e.shape != (blocks, bins + 1) or n.shape != (blocks,) or shape not in (None, c.shape):
                return None
            shape = c.shape
            if not np.isfinite(e).all() or not (np.diff(e, axis=1) > 0).all():
                return None
            c, n = _counts(c), _counts(n)
            if c is None or n is None or (c.sum(axis=1) + n > MAX_COUNT).any():
                return None
            edges[kind], counts[kind], nonfinite[kind] = e, c, n
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return StepHistograms(int(step), edges, counts, nonfinite)


def _counts(values: np.ndarray) -> np.ndarray | None:
    """Whole numbers from 0 to MAX_COUNT as int64, else None."""
    if values.dtype.kind == "f" and (not np.isfinite(values).all() or (values != np.floor(values)).any()):
        return None
    if values.dtype.kind not in "iuf":
        return None
    if values.size and (values.min() < 0 or values.max() > MAX_COUNT):
        return None
    return values.astype(np.int64)


def from_record(record: dict) -> StepHistograms | None:
    """The validated histograms of a trainer record (None when it is not a valid one)."""
    if not isinstance(record, dict) or record.get("type") != "histograms":
        return None
    return from_arrays(record.get("step"), record)


def thin(entries: list[StepHistograms]) -> list[StepHistograms]:
    """`entries` kept within MAX_NUMBERS: beyond it every other one is dropped (the newest stays)."""
    while len(entries) > 2 and sum(e.numbers() for e in entries) > MAX_NUMBERS:
        entries = entries[-1::-2][::-1]
    return entries


# -- the file -------------------------------------------------------------------------------------

def to_bytes(entries: list[StepHistograms]) -> bytes:
    """A run's histograms as safetensors bytes: `steps` (R,) int64, `<kind>_edges` (R, blocks, bins + 1)
    float64, `<kind>_counts` (R, blocks, bins) int64, `<kind>_nonfinite` (R, blocks) int64. Entries of
    another shape than the first are left out."""
    from safetensors.numpy import save

    if entries:
        first = entries[0]
        entries = [e for e in entries if (e.blocks, e.bins) == (first.blocks, first.bins)]
        blocks, bins = first.blocks, first.bins
    else:
        blocks, bins = 0, BINS
    tensors = {"steps": np.array([e.step for e in entries], dtype=np.int64).reshape(len(entries))}
    for kind in KINDS:
        tensors[f"{kind}_edges"] = np.array([e.edges[kind] for e in entries],
                                            dtype=np.float64).reshape(len(entries), blocks, bins + 1)
        tensors[f"{kind}_counts"] = np.array([e.counts[kind] for e in entries],
                                             dtype=np.int64).reshape(len(entries), blocks, bins)
        tensors[f"{kind}_nonfinite"] = np.array([e.nonfinite[kind] for e in entries],
                                                dtype=np.int64).reshape(len(entries), blocks)
    return save(tensors, metadata={"format": FORMAT, "version": VERSION})


def from_bytes(raw: bytes) -> list[StepHistograms]:
    """The entries of `to_bytes` data, in step order; [] for anything that is not such a file, and rows
    that are not valid (or repeat or go back in steps) are left out."""
    from safetensors.numpy import load

    try:
        tensors = load(bytes(raw))
    except Exception:  # noqa: BLE001 - safetensors raises its own error type for malformed data
        return []
    wanted = {"steps": (np.int64, 1)}
    wanted.update({f"{kind}_edges": (np.float64, 3) for kind in KINDS})
    wanted.update({f"{kind}_counts": (np.int64, 3) for kind in KINDS})
    wanted.update({f"{kind}_nonfinite": (np.int64, 2) for kind in KINDS})
    if set(tensors) != set(wanted):
        return []
    for name, (dtype, ndim) in wanted.items():
        if tensors[name].dtype != dtype or tensors[name].ndim != ndim:
            return []
    steps = tensors["steps"]
    if any(len(tensors[name]) != len(steps) for name in wanted):
        return []
    out: list[StepHistograms] = []
    for i, step in enumerate(steps.tolist()):
        entry = from_arrays(step, {name: tensors[name][i] for name in KEYS})
        if entry is not None and (not out or entry.step > out[-1].step) and (
                not out or (entry.blocks, entry.bins) == (out[0].blocks, out[0].bins)):
            out.append(entry)
    return thin(out)


def read_file(path) -> list[StepHistograms]:
    """A run folder's histograms file ([] when it is missing, too large, not a regular file or broken)."""
    from explorer.core import files

    try:
        return from_bytes(files.read_bytes(path, "histograms"))
    except files.FileProblem:
        return []


def write_file(path, entries: list[StepHistograms]):
    """Write `entries` to `path` atomically (FileProblem when it cannot be written)."""
    from explorer.core import files

    return files.write_atomic(path, to_bytes(entries))


# -- recording in the trainer ---------------------------------------------------------------------

class HistogramRecorder:
    """Records the histograms of due steps for the Trainer, which calls, per step:

    `observe_batch(step, model, x, autocast)` with the step's first micro-batch before its forward,
    `observe_gradients(step)` after the backward of every micro-batch and before clipping, and
    `take()` after the step, which gives the record (or None).
    """

    def __init__(self, blocks, settings, enabled: bool = True) -> None:
        self.blocks = list(blocks)
        self.settings = settings
        self.enabled = enabled
        self._pending: dict | None = None
        self.parameters = sum(p.numel() for block in self.blocks for p in block.parameters())

    def observe_batch(self, step: int, model: torch.nn.Module, x: torch.Tensor, autocast) -> None:
        """On a due step: the blocks' output histograms of `x`, by a no-grad eval-mode forward pass."""
        import torch

        self._pending = None
        if not self.enabled or not self.blocks or not due(step, self.settings.hist_every):
            return
        outputs: list = [None] * len(self.blocks)

        def hook_for(i):
            def hook(_module, _args, output):
                if outputs[i] is None:
                    outputs[i] = histogram([output])
            return hook

        handles = [block.register_forward_hook(hook_for(i)) for i, block in enumerate(self.blocks)]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), autocast(), few_threads_for(self.parameters):
                model(x)
        finally:
            model.train(was_training)
            for handle in handles:
                handle.remove()
        if any(o is None for o in outputs):
            return
        self._pending = {"step": step, "activation": outputs}

    def observe_gradients(self, step: int) -> None:
        """On a due step: each block's gradient histogram (call before clipping)."""
        pending = self._pending
        if pending is None or pending["step"] != step:
            return
        with few_threads_for(self.parameters):
            pending["gradient"] = [histogram([p.grad for p in block.parameters() if p.grad is not None])
                                   for block in self.blocks]

    def take(self) -> dict | None:
        """The record of the step just trained (None when it recorded nothing): one host transfer."""
        import torch

        pending, self._pending = self._pending, None
        if pending is None or "gradient" not in pending:
            return None
        record = {"type": "histograms", "step": pending["step"]}
        for kind in KINDS:
            ranges = torch.stack([r for r, _ in pending[kind]]).double().cpu()
            counts = torch.stack([c for _, c in pending[kind]]).cpu()
            fractions = torch.arange(BINS + 1, dtype=torch.float64) / BINS
            lo, hi = ranges[:, :1], ranges[:, 1:]
            edges = lo + (hi - lo) * fractions
            edges[:, -1] = hi[:, 0]
            record[f"{kind}_edges"] = edges.tolist()
            record[f"{kind}_counts"] = counts[:, :BINS].tolist()
            record[f"{kind}_nonfinite"] = counts[:, BINS].tolist()
        return record
