"""Toy datasets and seeded training on them."""

import threading
import time

import numpy as np
import pytest
import torch

from explorer.core.mlp.network import NetSpecError, build_model, preset_spec
from explorer.core.mlp.toydata import DATASETS, TrainControl, decision_grid, make_dataset, train_toy


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny MLPs train fastest single-threaded (intra-op threads only spin on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# The toy-2d preset must reach 95 % training accuracy within this many steps (issue 4, section 5).
STEPS_TO_LEARN = 300


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_balanced_split_and_seeded(name):
    data = make_dataset(name, n=120, noise=0.1, test_fraction=0.25, seed=3)
    assert data.x_train.shape == (90, 2) and data.x_test.shape == (30, 2)
    labels = torch.cat([data.y_train, data.y_test])
    assert set(labels.tolist()) == {0.0, 1.0}
    assert abs(float(labels.mean()) - 0.5) < 0.15
    again = make_dataset(name, n=120, noise=0.1, test_fraction=0.25, seed=3)
    assert torch.equal(data.x_train, again.x_train)
    other = make_dataset(name, n=120, noise=0.1, test_fraction=0.25, seed=4)
    assert not torch.equal(data.x_train, other.x_train)
    assert float(data.x_all.abs().max()) < 2.0


def test_noise_moves_points():
    clean = make_dataset("circles", n=100, noise=0.0, seed=0)
    radii = torch.cat([clean.x_train, clean.x_test]).norm(dim=1)
    assert torch.allclose(radii[(radii - 1.2).abs() < 0.01], torch.tensor(1.2), atol=1e-4)
    noisy = make_dataset("circles", n=100, noise=0.2, seed=0)
    assert not torch.allclose(clean.x_train, noisy.x_train)


def test_bad_dataset_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset("mnist")
    with pytest.raises(ValueError, match="test fraction"):
        make_dataset("xor", test_fraction=1.0)


def final_accuracy(name: str, seed: int) -> float:
    spec = preset_spec("toy-2d")
    spec.seed = seed
    data = make_dataset(name, n=200, noise=0.1, seed=seed)
    records = [r for r in train_toy(spec, data, STEPS_TO_LEARN) if r["type"] == "step"]
    return records[-1]["train_acc"]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ["xor", "moons"])
def test_seeded_training_learns(name, seed):
    assert final_accuracy(name, seed) >= 0.95


def test_records_are_small_and_bounded():
    spec = preset_spec("toy-2d")
    data = make_dataset("moons", n=100, seed=0)
    records = list(train_toy(spec, data, 100, record_every=10, boundary_every=50, grid_size=16))
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(10, 101, 10))
    grids = [r for r in records if r["type"] == "boundary"]
    assert [g["step"] for g in grids] == [0, 50, 100]
    assert grids[-1]["grid"].shape == (16, 16)
    assert records[-1]["type"] == "done"


def test_stop_flag_ends_training():
    control = TrainControl()
    spec = preset_spec("toy-2d")
    data = make_dataset("xor", n=100, seed=0)
    seen = []
    for record in train_toy(spec, data, 10_000, control=control, record_every=1):
        seen.append(record)
        if record["type"] == "step" and record["step"] == 20:
            control.request_stop()
    assert seen[-1]["type"] == "stopped" and seen[-1]["step"] == 20


def test_pause_holds_the_loop_until_resumed():
    control = TrainControl()
    control.pause()
    spec = preset_spec("toy-2d")
    data = make_dataset("xor", n=64, seed=0)
    out = []
    worker = threading.Thread(target=lambda: out.extend(train_toy(spec, data, 10, control=control)))
    worker.start()
    deadline = time.monotonic() + 60  # the first record may come late on a loaded machine
    while not out and time.monotonic() < deadline:
        worker.join(timeout=0.05)
    worker.join(timeout=0.2)  # paused: however long it waits, no step follows
    assert worker.is_alive() and len(out) == 1  # only the initial boundary before the first step
    control.resume()
    worker.join(timeout=30)
    assert out[-1]["type"] == "done"


def test_diverging_training_reports_an_error():
    spec = preset_spec("toy-2d")
    spec.optimizer, spec.lr, spec.loss, spec.output_activation = "sgd", 1e6, "mse", "none"
    spec.activations = ["relu", "relu"]
    records = list(train_toy(spec, make_dataset("moons", seed=0), 200))
    assert records[-1]["type"] == "error" and "learning rate" in records[-1]["message"]


def test_toy_training_needs_a_2d_binary_net():
    with pytest.raises(NetSpecError, match="input size to 2"):
        next(train_toy(preset_spec("seed"), make_dataset("xor"), 10))


def test_decision_grid_is_a_probability_image():
    spec = preset_spec("toy-2d")
    grid = decision_grid(spec, build_model(spec), size=8)
    assert grid.shape == (8, 8) and grid.dtype == np.float32
    assert (grid >= 0).all() and (grid <= 1).all()
