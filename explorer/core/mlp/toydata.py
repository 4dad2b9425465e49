"""Toy 2-D classification datasets, generated in code (no downloads), and a training loop over them.

Each generator returns points of two classes (labels 0 and 1) spread over roughly [-1.5, 1.5]^2, so one
plot extent fits them all. `make_dataset` adds noise, shuffles with a seeded generator and splits the
points into a train and a test part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from explorer.core.mlp.health import LayerProbe
from explorer.core.mlp.network import (
    NetSpec,
    NetSpecError,
    build_model,
    class1_probability,
    make_loss,
    make_optimizer,
    predict_classes,
    targets_for,
)
from explorer.core.mlp.spec import DATASET_LABELS  # noqa: F401 - re-exported (its old home)
from explorer.core.speed import single_torch_thread

DATASETS = ("moons", "circles", "xor", "spiral", "linear")
# The plane the decision boundary is drawn over: wide enough for every dataset with noise 0.3.
EXTENT = (-2.0, 2.0, -2.0, 2.0)


@dataclass
class ToyDataset:
    """A split 2-D dataset: float32 inputs of shape (N, 2) and float32 labels 0/1 of shape (N,)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def x_all(self) -> torch.Tensor:
        """Train and test inputs stacked, for plotting."""
        return torch.cat([self.x_train, self.x_test])


def make_dataset(
    name: str, n: int = 200, noise: float = 0.1, test_fraction: float = 0.25, seed: int = 0
) -> ToyDataset:
    """Generate `n` points of the named dataset with Gaussian `noise`, split off `test_fraction`."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if n < 4:
        raise ValueError("a dataset needs at least 4 points")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("the test fraction must be in [0, 1)")
    if noise < 0:
        raise ValueError("noise must not be negative")
    rng = np.random.default_rng(seed)
    x, y = _GENERATORS[name](rng, n)
    x = x + rng.normal(0.0, noise, size=x.shape)
    order = rng.permutation(n)
    x, y = x[order], y[order]
    n_test = int(round(n * test_fraction))
    n_test = min(n_test, n - 2)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    split = n - n_test
    return ToyDataset(name, xt[:split], yt[:split], xt[split:], yt[split:])


def _split_counts(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def _moons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n0, n1 = _split_counts(n)
    t0 = rng.uniform(0, np.pi, n0)
    t1 = rng.uniform(0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    # Centre the pair of moons on the origin and scale them to about [-1.5, 1.5].
    x = (np.concatenate([upper, lower]) - np.array([0.5, 0.25])) * 1.0
    return x, np.concatenate([np.zeros(n0), np.ones(n1)])


def _circles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n0, n1 = _split_counts(n)
    t = rng.uniform(0, 2 * np.pi, n)
    radius = np.concatenate([np.full(n0, 1.2), np.full(n1, 0.5)])
    x = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    return x, np.concatenate([np.zeros(n0), np.ones(n1)])


def _xor(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.2, 1.2, size=(n, 2))
    # Push points off the axes so that, without noise, the quadrants are cleanly separable.
    x = x + np.sign(x) * 0.1
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.float64)


def _spiral(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n0, n1 = _split_counts(n)
    parts = []
    for count, phase in ((n0, 0.0), (n1, np.pi)):
        r = rng.uniform(0.1, 1.0, count)
        theta = r * 2.5 * np.pi + phase  # one and a quarter turns per arm
        parts.append(np.stack([1.4 * r * np.cos(theta), 1.4 * r * np.sin(theta)], axis=1))
    return np.concatenate(parts), np.concatenate([np.zeros(n0), np.ones(n1)])


def _linear(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.3, 1.3, size=(n, 2))
    normal = np.array([1.0, -0.6])
    score = x @ normal + 0.2
    # A margin around the separating line keeps the noiseless data separable.
    x = x + np.outer(np.sign(score), normal / np.linalg.norm(normal)) * 0.15
    return x, (score > 0).astype(np.float64)


_GENERATORS: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]] = {
    "moons": _moons,
    "circles": _circles,
    "xor": _xor,
    "spiral": _spiral,
    "linear": _linear,
}


# ---------------------------------------------------------------------------------------------------
# Training on a toy dataset
# ---------------------------------------------------------------------------------------------------


class TrainControl:
    """Thread-safe stop and pause flags shared by a training loop and whoever drives it."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def request_stop(self) -> None:
        """Ask the loop to end at its next step (also ends a pause)."""
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        """Hold the loop before its next step until resume() or request_stop()."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused loop go on."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """True while the loop is held."""
        return not self._running.is_set()

    @property
    def stopped(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def checkpoint(self) -> bool:
        """Block while paused; True when the loop should stop."""
        self._running.wait()
        return self._stop.is_set()


def evaluate(spec: NetSpec, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean loss, accuracy) of the model on inputs x with 0/1 labels."""
    if len(x) == 0:
        return float("nan"), float("nan")
    with torch.no_grad():
        out = model(x)
        loss = float(make_loss(spec)(out, targets_for(spec, labels)))
        acc = float((predict_classes(spec, out) == labels.long()).float().mean())
    return loss, acc


def decision_grid(
    spec: NetSpec, model: nn.Module, size: int = 64, extent: tuple[float, float, float, float] = EXTENT
) -> np.ndarray:
    """The class-1 probability over a size x size grid of the plane, shape (size_y, size_x), row 0 at ymin."""
    x0, x1, y0, y1 = extent
    xs = torch.linspace(x0, x1, size)
    ys = torch.linspace(y0, y1, size)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        prob = class1_probability(spec, model(points))
    return prob.reshape(size, size).numpy().astype(np.float32)


def check_toy_spec(spec: NetSpec) -> None:
    """Raise NetSpecError unless the spec can classify 2-D points into two classes."""
    spec.validate()
    if spec.input_size != 2:
        raise NetSpecError("toy data has 2 features: set the input size to 2")
    if spec.loss == "cross-entropy" and spec.output_size != 2:
        raise NetSpecError("toy data has 2 classes: with cross-entropy set the output size to 2")
    if spec.loss != "cross-entropy" and spec.output_size != 1:
        raise NetSpecError("toy data has 2 classes: with a binary loss set the output size to 1")


def train_toy(
    spec: NetSpec,
    data: ToyDataset,
    steps: int,
    control: TrainControl | None = None,
    record_every: int = 5,
    boundary_every: int = 25,
    grid_size: int = 64,
    model: nn.Module | None = None,
) -> Iterator[dict]:
    """Train on the dataset's train split for `steps` mini-batch steps, yielding small records.

    Records: {"type": "step", "step", "train_loss", "train_acc", "test_loss", "test_acc", and the
    per-layer health lists of explorer.core.mlp.health (grad_norms, update_ratios, act_mean, act_std,
    saturated, dead)} every `record_every` steps, {"type": "boundary", "step", "grid", "extent"} every
    `boundary_every` steps,
    and one final {"type": "done" | "stopped" | "error", "step", "message"}.
    """
    check_toy_spec(spec)
    control = control or TrainControl()
    model = model if model is not None else build_model(spec)
    optimizer = make_optimizer(spec, model)
    loss_fn = make_loss(spec)
    probe = LayerProbe(model)
    x, labels = data.x_train, data.y_train
    targets = targets_for(spec, labels)
    gen = torch.Generator().manual_seed(spec.seed)
    batch = min(spec.batch_size, len(x))
    order = torch.randperm(len(x), generator=gen)
    cursor = 0
    yield _boundary_record(0, spec, model, grid_size)
    step = 0
    for step in range(1, steps + 1):
        if control.checkpoint():
            yield {"type": "stopped", "step": step - 1, "message": f"stopped after {step - 1} steps"}
            return
        if cursor + batch > len(x):  # a new epoch: reshuffle
            order = torch.randperm(len(x), generator=gen)
            cursor = 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        optimizer.zero_grad(set_to_none=True)
        measure = step % record_every == 0 or step == steps
        with probe.watch(measure):
            loss = loss_fn(model(x[idx]), targets[idx])
        if not torch.isfinite(loss):
            yield {
                "type": "error",
                "step": step,
                "message": f"the loss became {loss.detach().item()} at step {step}: lower the learning rate",
            }
            return
        loss.backward()
        probe.before_update(measure)
        optimizer.step()
        probe.after_update(measure)
        if measure:
            yield {**_step_record(step, spec, model, data), **probe.fields()}
        if step % boundary_every == 0 or step == steps:
            yield _boundary_record(step, spec, model, grid_size)
    yield {"type": "done", "step": step, "message": f"finished {step} steps"}


def _step_record(step: int, spec: NetSpec, model: nn.Module, data: ToyDataset) -> dict:
    train_loss, train_acc = evaluate(spec, model, data.x_train, data.y_train)
    test_loss, test_acc = evaluate(spec, model, data.x_test, data.y_test)
    return {
        "type": "step",
        "step": step,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
    }


def _boundary_record(step: int, spec: NetSpec, model: nn.Module, size: int) -> dict:
    return {"type": "boundary", "step": step, "grid": decision_grid(spec, model, size), "extent": EXTENT}


YIELD_S = 0.0003  # GIL release per training step, so the GUI thread gets its turn even flat out


def train_paced(spec, data, steps: int, control: TrainControl, speed: Callable[[], float],
                report: Callable[[dict], None], grid_size: int = 64) -> dict:
    """`train_toy` at `speed()` steps per second (0: flat out), each record passed to `report`.

    Returns the final record ({"type": "done" | "stopped" | "error", ...}). Runs single-threaded and sleeps a
    little every step: sleeping releases the GIL, so a GUI in the same process stays responsive.
    """
    final = {"type": "error", "step": 0, "message": "training ended unexpectedly"}
    with single_torch_thread():
        try:
            slow = 0 < speed() <= 100
            last_step = time.perf_counter()
            for record in train_toy(spec, data, steps, control, record_every=1,
                                    boundary_every=5 if slow else 20, grid_size=grid_size):
                if record["type"] in ("done", "stopped", "error"):
                    return record
                report(record)
                if record["type"] == "step":
                    rate = speed()
                    wait = 1.0 / rate - (time.perf_counter() - last_step) if rate else 0.0
                    time.sleep(min(max(wait, YIELD_S), 0.5))
                    last_step = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
            final = {"type": "error", "step": 0, "message": f"{type(exc).__name__}: {exc}"}
    return final
