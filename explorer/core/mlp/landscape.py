"""The loss landscape around a toy run's weights: a 2-D slice of the loss, and the run's path on it.

A network with P parameters has a loss surface over P dimensions; a picture can show only a plane
through it. `loss_landscape` evaluates the loss at θ + a·d1 + b·d2 on a grid of (a, b), where θ are the
current weights and d1, d2 are two directions:

    random  Two seeded random directions, filter-normalised (Li et al. 2018, "Visualizing the Loss
            Landscape of Neural Nets"): each row of a Linear weight (one unit's incoming weights, the
            "filter" of an MLP) is drawn from a standard normal, then scaled to the norm of the same row
            of the weights. A step of 1 along the direction moves every unit by as much as its weights
            are long, so layers and units of different scales are compared fairly, and one grid span
            (default ±1) means the same for every network. Biases get a zero direction (the option the
            paper's code offers for biases and batch-norm parameters), so the slice moves the weight
            matrices only. Units whose weights are all zero get no length at all (zeros init).
    pca     The two principal directions of the training path (the paper's Section 7): the top two
            right singular vectors of the matrix of (θ_k − θ) over the recorded snapshots θ_k. Random
            directions in a space of hundreds of dimensions are nearly orthogonal to the path, which
            then shows as a short scribble near the centre; the PCA plane is the one the path moves in
            most. Its axes are in parameter units, and the grid spans the path with a margin.

The path is projected onto the plane by least squares (the coefficients (a, b) that bring
a·d1 + b·d2 closest to θ_k − θ); `in_plane` says how much of its length the plane holds.

The toy runs do not keep their weights: `toy_landscape` replays a run on its own spec and data (the
trainer is seeded and deterministic, single-threaded as the app trains) to the step shown, recording
flattened parameter snapshots on the way, at most MAX_SNAPSHOTS of them and MAX_SNAPSHOT_BYTES in all
(evenly thinned). Everything
runs on copies: the model given is never changed. A loss that is not finite stays NaN in the grid.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from explorer.core.mlp.network import NetSpec, build_model, make_loss, targets_for
from explorer.core.mlp.toydata import ToyDataset, TrainControl, make_dataset, train_toy
from explorer.core.speed import single_torch_thread

GRID_SIZE = 31  # points per side of the default grid
SPAN = 1.0  # the random directions' grid reaches ±SPAN
MAX_SNAPSHOTS = 200  # weights kept along a replayed path
MAX_SNAPSHOT_BYTES = 48 * 2**20  # and at most this much memory for them (the widest networks keep fewer)
PCA_MARGIN = 1.25  # the PCA grid spans the path's extent times this
DIRECTIONS = {"random": "random, filter-normalised", "pca": "the path's principal directions (PCA)"}


@dataclass
class Landscape:
    """A computed slice of the loss and the path projected onto it."""

    xs: np.ndarray  # (nx,) coordinates along direction 1
    ys: np.ndarray  # (ny,) coordinates along direction 2
    losses: np.ndarray  # (ny, nx): row j is ys[j], column i is xs[i]; NaN where not finite
    centre_loss: float  # the loss at the current weights (a = b = 0), NaN when not finite
    directions: str  # a key of DIRECTIONS
    seed: int
    step: int = 0  # the training step of the current weights
    path_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    path_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (n, 2) projections
    in_plane: float | None = None  # share of the path's length the plane holds (None: no path)
    explained: float | None = None  # pca: share of the path's variance its two directions hold

    def point_at(self, step: int | None) -> tuple[int, float, float] | None:
        """(step, a, b) of the recorded path point nearest `step` (None: the newest), None without a path."""
        if not len(self.path_steps):
            return None
        if step is None:
            k = len(self.path_steps) - 1
        else:
            k = int(np.argmin(np.abs(self.path_steps - int(step))))
        return int(self.path_steps[k]), float(self.path_xy[k, 0]), float(self.path_xy[k, 1])


class SnapshotRecorder:
    """Flattened parameter vectors along a run, at most `cap` of them.

    Steps are kept every `stride` steps; when the cap is reached every second one is dropped and the
    stride doubles, so the kept snapshots stay evenly spread over the whole run. The newest snapshot
    offered is always kept as well (the path ends where the weights are).
    """

    def __init__(self, cap: int = MAX_SNAPSHOTS) -> None:
        if cap < 2:
            raise ValueError("keep at least 2 snapshots")
        self.cap = cap
        self.stride = 1
        self._steps: list[int] = []
        self._vectors: list[np.ndarray] = []
        self._last: tuple[int, np.ndarray] | None = None

    def offer(self, step: int, model: nn.Module) -> None:
        """Consider the model's weights after `step` (steps offered in increasing order)."""
        # in the parameters' own dtype (float32): exact, and half the memory of float64
        vector = parameters_to_vector([p.detach() for p in model.parameters()]).cpu().numpy().copy()
        self._last = (int(step), vector)
        if step % self.stride or (self._steps and self._steps[-1] >= step):
            return
        self._steps.append(int(step))
        self._vectors.append(vector)
        if len(self._steps) >= self.cap:  # room for the newest one, which may fall between strides
            self._steps, self._vectors = self._steps[::2], self._vectors[::2]
            self.stride *= 2

    def snapshots(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps (n,), vectors (n, P)) in step order, the newest offered included; at most `cap`."""
        steps, vectors = list(self._steps), list(self._vectors)
        if self._last is not None and (not steps or steps[-1] != self._last[0]):
            steps.append(self._last[0])
            vectors.append(self._last[1])
        if not steps:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        return np.asarray(steps, dtype=np.int64), np.stack(vectors)


def snapshot_cap(model: nn.Module) -> int:
    """How many snapshots of this model fit MAX_SNAPSHOTS and MAX_SNAPSHOT_BYTES (at least 2)."""
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return max(2, min(MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES // max(1, size)))


def flat_weights(model: nn.Module) -> np.ndarray:
    """Every parameter of the model in one float64 vector (the order of model.parameters())."""
    return parameters_to_vector([p.detach() for p in model.parameters()]).to(torch.float64).numpy().copy()


def filter_normalised_direction(model: nn.Module, generator: torch.Generator) -> np.ndarray:
    """A random direction in the model's parameter space, filter-normalised (Li et al. 2018).

    For every parameter with two or more dimensions (a Linear weight, shape (out, in)), each row is
    drawn from a standard normal and scaled to the norm of that row of the weight; one-dimensional
    parameters (biases) get zeros. Returns a float64 vector in the order of model.parameters().
    """
    parts = []
    for p in model.parameters():
        w = p.detach().to(torch.float64)
        if w.dim() <= 1:
            parts.append(torch.zeros(w.numel(), dtype=torch.float64))
            continue
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        rows_w, rows_d = w.reshape(w.shape[0], -1), d.reshape(d.shape[0], -1)
        scale = rows_w.norm(dim=1, keepdim=True) / rows_d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        parts.append((rows_d * scale).reshape(-1))
    return torch.cat(parts).numpy() if parts else np.zeros(0)


def symmetric_grid(size: int, span: float) -> np.ndarray:
    """`size` coordinates from -span to span; for an odd size the middle one is exactly 0."""
    if size < 2:
        raise ValueError("a landscape grid needs at least 2 points per side")
    half = (size - 1) / 2
    return span * (np.arange(size) - half) / half


def project(vectors: np.ndarray, centre: np.ndarray, d1: np.ndarray, d2: np.ndarray
            ) -> tuple[np.ndarray, float | None]:
    """Least-squares coordinates (a, b) of each `vectors` row minus `centre` on span{d1, d2}, shape (n, 2),
    and the share of the path's length the plane holds (None when the path has no length or is not
    finite: then the coordinates are NaN)."""
    if not len(vectors):
        return np.zeros((0, 2)), None
    offsets = vectors - centre
    basis = np.stack([d1, d2], axis=1)  # (P, 2)
    if not (np.isfinite(offsets).all() and np.isfinite(basis).all()) or not basis.any():
        return np.full((len(vectors), 2), np.nan), None
    coords, *_ = np.linalg.lstsq(basis, offsets.T, rcond=None)
    coords = coords.T
    inside = coords @ basis.T
    steps, steps_inside = np.diff(offsets, axis=0), np.diff(inside, axis=0)
    length = float(np.linalg.norm(steps, axis=1).sum())
    share = float(np.linalg.norm(steps_inside, axis=1).sum()) / length if length > 0 else None
    return coords, share


def loss_landscape(model: nn.Module, loss_of: Callable[[nn.Module], torch.Tensor], size: int = GRID_SIZE,
                   span: float = SPAN, seed: int = 0, directions: str = "random",
                   path: tuple[np.ndarray, np.ndarray] | None = None, step: int = 0,
                   progress: Callable[[tuple[int, int]], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> Landscape | None:
    """The loss `loss_of(m)` on a size x size grid around `model`'s weights, on a deep copy.

    `path` is (steps, snapshot vectors) of the training path (see SnapshotRecorder), projected onto the
    plane; `directions` "pca" needs it (at least two snapshots that differ from the weights). `progress`
    gets (rows done, rows); None is returned when `cancelled()` turns true.
    """
    if directions not in DIRECTIONS:
        raise ValueError(f"unknown directions {directions!r}; choose one of {', '.join(DIRECTIONS)}")
    trial = copy.deepcopy(model)
    trial.eval()
    params = list(trial.parameters())
    dtype = params[0].dtype if params else torch.float32
    centre = flat_weights(trial)
    steps, vectors = path if path is not None else (np.zeros(0, dtype=np.int64), np.zeros((0, len(centre))))
    explained = None
    if directions == "random":
        gen = torch.Generator().manual_seed(int(seed))
        d1 = filter_normalised_direction(trial, gen)
        d2 = filter_normalised_direction(trial, gen)
        xs = ys = symmetric_grid(size, span)
    else:
        d1, d2, explained = principal_directions(vectors, centre)
        coords, _ = project(vectors, centre, d1, d2)
        reach = np.nanmax(np.abs(coords), axis=0) * PCA_MARGIN if len(coords) else np.ones(2)
        reach = np.where(np.isfinite(reach) & (reach > 0), reach, 1.0)
        xs, ys = symmetric_grid(size, float(reach[0])), symmetric_grid(size, float(reach[1]))
    path_xy, in_plane = project(vectors, centre, d1, d2)
    losses = np.full((len(ys), len(xs)), np.nan)
    base = torch.as_tensor(centre, dtype=torch.float64)
    t1, t2 = torch.as_tensor(d1, dtype=torch.float64), torch.as_tensor(d2, dtype=torch.float64)
    with torch.no_grad(), single_torch_thread():
        for j, b in enumerate(ys):
            if cancelled is not None and cancelled():
                return None
            for i, a in enumerate(xs):
                if a == 0 and b == 0:
                    point = base  # exactly the weights: the centre's loss is the model's own
                else:
                    point = base + float(a) * t1 + float(b) * t2
                vector_to_parameters(point.to(dtype), params)
                value = float(loss_of(trial))
                losses[j, i] = value if math.isfinite(value) else np.nan
            if progress is not None:
                progress((j + 1, len(ys)))
        vector_to_parameters(base.to(dtype), params)
        centre_value = float(loss_of(trial))
    return Landscape(xs=xs, ys=ys, losses=losses,
                     centre_loss=centre_value if math.isfinite(centre_value) else math.nan,
                     directions=directions, seed=int(seed), step=int(step), path_steps=steps,
                     path_xy=path_xy, in_plane=in_plane, explained=explained)


def principal_directions(vectors: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The top two principal directions of the path's offsets from `centre` (unit vectors) and the share
    of the offsets' sum of squares they hold. Raises ValueError for a path too short or not finite."""
    offsets = vectors - centre if len(vectors) else np.zeros((0, len(centre)))
    offsets = offsets[np.linalg.norm(offsets, axis=1) > 0] if len(offsets) else offsets
    if len(offsets) < 2:
        raise ValueError("the path's principal directions need a trained run: train a few steps first, "
                         "or choose random directions")
    if not np.isfinite(offsets).all():
        raise ValueError("the path holds weights that are not finite numbers: choose random directions")
    _, singular, vt = np.linalg.svd(offsets, full_matrices=False)
    total = float((singular**2).sum())
    if len(singular) < 2 or singular[1] <= 1e-12 * singular[0]:
        raise ValueError("the path moves along a single line: there is no second direction to show")
    return vt[0], vt[1], float((singular[:2] ** 2).sum()) / total if total > 0 else 0.0


# ---------------------------------------------------------------------------------------------------
# Toy runs
# ---------------------------------------------------------------------------------------------------


def toy_dataset(settings) -> ToyDataset:
    """The dataset a toy run trained on, from its saved settings (name, count, noise, test_fraction,
    seed: a DatasetModel or a dict of those)."""
    get = settings.get if isinstance(settings, dict) else lambda k: getattr(settings, k)
    return make_dataset(get("name"), get("count"), get("noise"), get("test_fraction"), get("seed"))


def toy_train_loss(spec: NetSpec, data: ToyDataset) -> Callable[[nn.Module], torch.Tensor]:
    """The mean loss over the whole train split: the train loss the run's curve shows."""
    x, y, loss_fn = data.x_train, targets_for(spec, data.y_train), make_loss(spec)
    return lambda m: loss_fn(m(x), y)


def replay_toy_run(spec: NetSpec, data: ToyDataset, steps: int, cap: int | None = None,
                   progress: Callable[[int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None
                   ) -> tuple[nn.Module, np.ndarray, np.ndarray] | None:
    """Train `spec` on `data` for `steps` steps as the app does, and return (the model after them, the
    snapshot steps, the snapshot vectors), or None when cancelled. A run that failed on a loss that was
    not finite ends at the last step before it, as the recorded run did. `cap` (default: snapshot_cap)
    bounds the snapshots kept."""
    model = build_model(spec)
    cap = snapshot_cap(model) if cap is None else cap
    recorder = SnapshotRecorder(cap)
    recorder.offer(0, model)
    every = max(1, math.ceil(steps / max(1, cap - 2)))  # about cap snapshots, no thinning needed
    control = TrainControl()
    with single_torch_thread():  # as the app trains: the same arithmetic, the same weights
        records = train_toy(spec, data, steps, control, record_every=every, boundary_every=steps + 1,
                            grid_size=2, model=model) if steps > 0 else ()
        for record in records:
                if cancelled is not None and cancelled():
                    control.request_stop()
                    return None
                if record["type"] == "step":
                    recorder.offer(record["step"], model)
                    if progress is not None:
                        progress(record["step"])
                elif record["type"] in ("done", "stopped", "error"):
                    # an error record names the step whose loss was not finite: no update was made in it
                    end = int(record["step"]) - (record["type"] == "error")
                    if end > 0:
                        recorder.offer(end, model)
                    break
    path_steps, vectors = recorder.snapshots()
    return model, path_steps, vectors


def toy_landscape(spec: NetSpec, data: ToyDataset, steps: int, size: int = GRID_SIZE, span: float = SPAN,
                  seed: int = 0, directions: str = "random",
                  progress: Callable[[tuple[int, int]], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> Landscape | None:
    """The loss landscape of a toy run after `steps` steps (0: the starting weights), with its path.

    `progress` gets (done, total) over the replay's steps and the grid's rows together.
    """
    total = steps + size

    def replayed(step: int) -> None:
        if progress is not None:
            progress((step, total))

    def rows(done: tuple[int, int]) -> None:
        if progress is not None:
            progress((steps + done[0], total))

    replay = replay_toy_run(spec, data, steps, progress=replayed, cancelled=cancelled)
    if replay is None:
        return None
    model, path_steps, vectors = replay
    reached = int(path_steps[-1]) if len(path_steps) else 0
    return loss_landscape(model, toy_train_loss(spec, data), size=size, span=span, seed=seed,
                          directions=directions, path=(path_steps, vectors), step=reached,
                          progress=rows, cancelled=cancelled)
