"""The loss landscape (explorer/core/mlp/landscape.py): its centre, its directions, its path, its limits."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.mlp.landscape import (
    MAX_SNAPSHOT_BYTES,
    MAX_SNAPSHOTS,
    SnapshotRecorder,
    filter_normalised_direction,
    flat_weights,
    loss_landscape,
    project,
    replay_toy_run,
    snapshot_cap,
    symmetric_grid,
    toy_dataset,
    toy_landscape,
    toy_train_loss,
)
from explorer.core.mlp.network import NetSpec, build_model, preset_spec
from explorer.core.mlp.toydata import evaluate, make_dataset, single_torch_thread, train_toy
from explorer.core.workspaces.network import DatasetModel


@pytest.fixture(scope="module")
def data():
    return make_dataset("moons", 120, 0.1, 0.25, 0)


def test_the_centre_is_the_current_loss_and_the_weights_are_untouched(data):
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    before = [p.detach().clone() for p in model.parameters()]
    land = loss_landscape(model, toy_train_loss(spec, data), size=7, seed=3)
    loss, _ = evaluate(spec, model, data.x_train, data.y_train)
    assert land.losses.shape == (7, 7)
    assert land.losses[3, 3] == pytest.approx(loss, rel=1e-12, abs=1e-12)
    assert land.centre_loss == pytest.approx(loss, rel=1e-12, abs=1e-12)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    # away from the centre the loss differs (the grid really moves the weights)
    assert abs(land.losses[0, 0] - loss) > 1e-4


def test_the_centre_of_a_replayed_run_is_its_recorded_train_loss(data):
    spec = preset_spec("toy-2d")
    with single_torch_thread():  # as the app trains
        records = [r for r in train_toy(spec, data, 60, record_every=1) if r["type"] == "step"]
    land = toy_landscape(spec, data, 60, size=5)
    assert land.step == 60
    assert land.centre_loss == pytest.approx(records[-1]["train_loss"], rel=1e-12)
    assert land.losses[2, 2] == pytest.approx(records[-1]["train_loss"], rel=1e-12)
    assert land.path_steps[0] == 0 and land.path_steps[-1] == 60
    # the path ends at the weights shown: the projection of the last snapshot is the origin
    assert np.allclose(land.path_xy[-1], 0.0)


def test_filter_normalised_rows_have_the_weights_row_norms_and_biases_do_not_move():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[1].zero_()  # a unit with no weights gets no length
    d = filter_normalised_direction(model, torch.Generator().manual_seed(0))
    offset = 0
    for p in model.parameters():
        part = d[offset:offset + p.numel()].reshape(p.shape)
        offset += p.numel()
        if p.dim() == 1:
            assert not part.any()
            continue
        rows = np.linalg.norm(part, axis=1)
        assert np.allclose(rows, p.detach().double().norm(dim=1).numpy(), rtol=1e-12)
    assert offset == len(d) == len(flat_weights(model))
    assert not d[3:6].any()  # fc1's row 1 (3 inputs per row)


def test_the_same_seed_gives_the_same_picture_and_another_seed_another(data):
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    loss = toy_train_loss(spec, data)
    a = loss_landscape(model, loss, size=5, seed=1)
    b = loss_landscape(model, loss, size=5, seed=1)
    c = loss_landscape(model, loss, size=5, seed=2)
    assert np.array_equal(a.losses, b.losses)
    assert not np.allclose(a.losses, c.losses)
    assert a.losses[2, 2] == c.losses[2, 2]


def test_cancel_returns_none_and_progress_counts_rows(data):
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    seen = []
    land = loss_landscape(model, toy_train_loss(spec, data), size=6, progress=seen.append)
    assert land is not None and seen == [(k, 6) for k in range(1, 7)]
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    assert loss_landscape(model, toy_train_loss(spec, data), size=6, cancelled=cancelled) is None
    assert len(calls) == 3  # stopped at the third row's check, not after the whole grid
    assert toy_landscape(spec, data, 40, size=5, cancelled=lambda: True) is None


def test_weights_that_give_nan_leave_gaps_not_a_crash(data):
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    with torch.no_grad():
        model.fc1.weight[0, 0] = math.nan
    land = loss_landscape(model, toy_train_loss(spec, data), size=5)
    assert land.losses.shape == (5, 5) and np.isnan(land.losses).all()
    assert math.isnan(land.centre_loss)
    path = (np.array([0, 1]), np.stack([flat_weights(model)] * 2))
    land = loss_landscape(model, toy_train_loss(spec, data), size=3, path=path)
    assert np.isnan(land.path_xy).all() and land.in_plane is None


def test_an_overflowing_loss_is_nan_in_the_grid():
    model = nn.Sequential(nn.Linear(1, 1))
    with torch.no_grad():
        model[0].weight.fill_(1e30)
    x = torch.tensor([[1e10]])

    def loss_of(m):
        return ((m(x) - 0.0) ** 2).mean()  # 1e80 overflows float32: inf

    land = loss_landscape(model, loss_of, size=3)
    assert math.isnan(land.centre_loss) and np.isnan(land.losses[1, 1])  # inf is no colour: a gap


def test_the_snapshot_cap_holds_and_keeps_the_whole_run():
    model = nn.Sequential(nn.Linear(2, 2))
    recorder = SnapshotRecorder(cap=10)
    for step in range(0, 1001):
        with torch.no_grad():
            model[0].bias.fill_(step)
        recorder.offer(step, model)
    steps, vectors = recorder.snapshots()
    assert len(steps) <= 10 and vectors.shape == (len(steps), 6)
    assert steps[0] == 0 and steps[-1] == 1000  # the newest is always kept
    assert np.all(np.diff(steps) > 0)
    assert np.array_equal(vectors[:, -1], steps.astype(float))  # each vector is its step's weights
    gaps = np.diff(steps[:-1])
    assert gaps.max() == gaps.min()  # evenly thinned


def test_a_long_replay_keeps_at_most_the_cap(data):
    spec = preset_spec("toy-2d")
    model, steps, vectors = replay_toy_run(spec, data, 450, cap=20)
    assert len(steps) <= 20 and steps[-1] == 450 and vectors.shape[0] == len(steps)
    assert np.array_equal(vectors[-1], flat_weights(model))
    assert len(replay_toy_run(spec, data, 450)[1]) <= MAX_SNAPSHOTS


def test_the_widest_network_keeps_fewer_snapshots_within_the_memory_cap():
    small, wide = build_model(preset_spec("toy-2d")), nn.Sequential(*[nn.Linear(256, 256) for _ in range(6)])
    assert snapshot_cap(small) == MAX_SNAPSHOTS
    wide_bytes = sum(p.numel() * 4 for p in wide.parameters())
    assert 2 <= snapshot_cap(wide) < MAX_SNAPSHOTS
    assert snapshot_cap(wide) * wide_bytes <= MAX_SNAPSHOT_BYTES


def test_a_failed_run_is_replayed_to_its_last_good_step(data):
    # a linear network with MSE at lr 10 overflows to an infinite loss within a few steps
    spec = NetSpec(2, [16], ["none"], 1, "none", "mse", "sgd", 10.0, 0.0, 0.0, 32, 0)
    with single_torch_thread():
        records = list(train_toy(spec, data, 100, record_every=1))
    assert records[-1]["type"] == "error"
    last = [r for r in records if r["type"] == "step"][-1]
    land = toy_landscape(spec, data, 100, size=3)
    assert land.step == last["step"] == records[-1]["step"] - 1
    if math.isfinite(last["train_loss"]):
        assert land.centre_loss == pytest.approx(last["train_loss"], rel=1e-12)
    else:  # the whole split's loss had already overflowed: NaN, a gap, never inf
        assert math.isnan(land.centre_loss) and np.isnan(land.losses[1, 1])


def test_projection_is_least_squares_onto_the_plane():
    rng = np.random.default_rng(0)
    d1, d2 = rng.normal(size=50), rng.normal(size=50)
    centre = rng.normal(size=50)
    path = np.stack([centre + 2 * d1 - 0.5 * d2, centre + 0.3 * d1, centre])
    coords, share = project(path, centre, d1, d2)
    assert np.allclose(coords, [[2, -0.5], [0.3, 0], [0, 0]])
    assert share == pytest.approx(1.0)
    off = path + np.stack([rng.normal(size=50) * 5, np.zeros(50), np.zeros(50)])
    _, share = project(off, centre, d1, d2)
    assert share < 1.0


def test_pca_directions_hold_the_path_and_need_one(data):
    spec = preset_spec("toy-2d")
    land = toy_landscape(spec, data, 80, size=5, directions="pca")
    random = toy_landscape(spec, data, 80, size=5, directions="random")
    assert land.explained is not None and 0.5 < land.explained <= 1.0 + 1e-12
    assert land.in_plane > random.in_plane  # the plane the path moves in holds more of it
    assert land.losses[2, 2] == pytest.approx(random.losses[2, 2], rel=1e-12)
    # the grid spans the path
    assert np.abs(land.path_xy[:, 0]).max() <= land.xs.max()
    with pytest.raises(ValueError, match="trained run"):
        toy_landscape(spec, data, 0, size=3, directions="pca")
    with pytest.raises(ValueError, match="unknown directions"):
        loss_landscape(build_model(spec), toy_train_loss(spec, data), directions="sideways")


def test_grid_and_dataset_helpers():
    xs = symmetric_grid(31, 1.0)
    assert xs[15] == 0.0 and xs[0] == -1.0 and xs[-1] == 1.0
    with pytest.raises(ValueError):
        symmetric_grid(1, 1.0)
    settings = DatasetModel(name="circles", noise=0.2, count=80, test_fraction=0.25, seed=4)
    a = toy_dataset(settings)
    b = make_dataset("circles", 80, 0.2, 0.25, 4)
    assert torch.equal(a.x_train, b.x_train)
