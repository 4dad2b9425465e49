"""Per-layer health of toy training (core/mlp/health.py): each statistic against a direct torch
computation, the presets that show the failures, the initialisations, and the lr range test."""

import json
import math

import numpy as np
import pytest
import torch

from explorer.core.mlp.health import (
    HEALTH_KEYS,
    LayerProbe,
    dead_share,
    health_names,
    lr_range_test,
    saturated_share,
    suggest_lr,
)
from explorer.core.mlp.network import (
    NetSpec,
    build_model,
    make_loss,
    make_optimizer,
    preset_spec,
    targets_for,
)
from explorer.core.mlp.toydata import make_dataset, train_toy
from explorer.core.workspaces.network import NetworkWorkspace, ToyRun

DATA = make_dataset("moons", 200, 0.1, 0.25, 0)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_each_statistic_equals_a_direct_torch_computation(act):
    spec = NetSpec(2, [5, 4], [act, act], 1, "none", "bce-logits", "sgd", 0.5, 0.0, 0.0, 16, 3)
    model = build_model(spec)
    probe = LayerProbe(model)
    optimizer = make_optimizer(spec, model)
    x, y = DATA.x_train[:16] * 3, targets_for(spec, DATA.y_train[:16])
    with probe.watch(True):
        loss = make_loss(spec)(model(x), y)
    loss.backward()
    probe.before_update(True)
    fc = [model.fc1, model.fc2, model.fc3]
    want_grads = [flat([m.weight.grad, m.bias.grad]).norm().item() for m in fc]
    before = [flat([m.weight, m.bias]).clone() for m in fc]
    optimizer.step()
    probe.after_update(True)
    got = probe.fields()
    assert set(got) == set(HEALTH_KEYS)
    assert got["grad_norms"] == pytest.approx(want_grads, rel=1e-6)
    after = [flat([m.weight, m.bias]) for m in fc]
    want_ratios = [((a - b).norm() / b.norm()).item() for a, b in zip(after, before, strict=True)]
    assert got["update_ratios"] == pytest.approx(want_ratios, rel=1e-5)
    # The activations of the forward that trained, recomputed directly from the weights before the step.
    with torch.no_grad():
        f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[act]
        a1 = f(x @ before[0][:10].reshape(5, 2).T + before[0][10:])
        a2 = f(a1 @ before[1][:20].reshape(4, 5).T + before[1][20:])
    for i, a in enumerate((a1, a2)):
        assert got["act_mean"][i] == pytest.approx(a.mean().item(), rel=1e-5, abs=1e-7)
        assert got["act_std"][i] == pytest.approx(a.std().item(), rel=1e-5, abs=1e-7)
        if act == "tanh":
            assert got["saturated"][i] == (a.abs() > 0.97).float().mean().item()
        elif act == "sigmoid":
            assert got["saturated"][i] == ((a * (1 - a)) < 0.06 * 0.25).float().mean().item()
        else:
            assert got["saturated"][i] is None
        if act == "relu":
            assert got["dead"][i] == (a.max(dim=0).values <= 0).float().mean().item()
        else:
            assert got["dead"][i] is None
    assert probe.fields() == {}  # taken once


def test_saturation_and_dead_units_on_hand_made_outputs():
    out = torch.tensor([[0.999, 0.5, -0.98], [0.2, -0.99, 0.1]])
    assert saturated_share("tanh", out) == pytest.approx(3 / 6)
    assert saturated_share("sigmoid", torch.tensor([0.001, 0.5, 0.99, 0.9])) == pytest.approx(2 / 4)
    assert saturated_share("relu", out) is None
    relu = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    assert dead_share("relu", relu) == pytest.approx(1 / 3)
    assert dead_share("tanh", relu) is None


def test_names_follow_the_model_and_skip_the_output_activation():
    spec = NetSpec(10, [5, 3], ["relu", "none"], 1, "sigmoid", "bce", "sgd", 0.1, 0.0, 0.0, 1, 1)
    linears, acts = health_names(spec)
    probe = LayerProbe(build_model(spec))
    assert linears == probe.layer_names == ["fc1", "fc2", "fc3"]
    assert acts == probe.activation_names == ["relu1"]


def test_deep_sigmoid_gradients_vanish_towards_the_input_and_relu_he_trains():
    def last(name, steps=150):
        return [r for r in train_toy(preset_spec(name), DATA, steps, record_every=steps, boundary_every=10**6)
                if r["type"] == "step"][-1]

    sig = last("deep-sigmoid")
    assert int(np.argmin(sig["grad_norms"])) in (0, 1)  # the first layers get the smallest gradient
    assert sig["grad_norms"][0] < sig["grad_norms"][-1] / 100
    assert abs(sig["train_loss"] - math.log(2)) < 0.02  # stuck at chance
    relu = last("deep-relu-he", 300)
    assert relu["train_loss"] < 0.3 and relu["grad_norms"][0] > relu["grad_norms"][-1] / 10
    high = last("lr-too-high")
    assert max(high["update_ratios"]) > 30 * 1e-3 and max(high["saturated"]) > 0.9
    json.dumps(high, allow_nan=False)


def test_zeros_initialisation_keeps_the_units_of_a_layer_identical():
    spec = NetSpec(2, [4], ["sigmoid"], 1, "none", "bce-logits", "sgd", 0.5, 0.0, 0.0, 32, 0, "zeros")
    model = build_model(spec)
    list(train_toy(spec, DATA, 30, model=model, boundary_every=10**6))
    w = model.fc1.weight.detach()
    assert torch.allclose(w, w[:1].expand_as(w))  # every hidden unit has the same incoming weights
    assert torch.equal(model.fc1.weight, model.fc1.weight[0].expand(4, 2))


@pytest.mark.parametrize("init", ["xavier", "he"])
def test_initialisations_have_their_variance(init):
    spec = NetSpec(200, [200], ["relu"], 1, "none", "bce-logits", "sgd", 0.1, 0.0, 0.0, 1, 0, init)
    w = build_model(spec).fc1.weight.detach()
    want = 2 / 400 if init == "xavier" else 2 / 200
    assert w.var().item() == pytest.approx(want, rel=0.05)
    assert build_model(spec).fc1.bias.abs().max().item() == 0.0


def test_unknown_init_is_a_clear_error():
    with pytest.raises(ValueError, match="initialisation"):
        NetSpec(init="ones").validate()


def lr_test_on(model, spec, **kw):
    x, y = DATA.x_train, targets_for(spec, DATA.y_train)
    loss_fn = make_loss(spec)

    def loss_of(m, i):
        idx = torch.arange(i * 16, i * 16 + 16) % len(x)
        return loss_fn(m(x[idx]), y[idx])

    def optimizer(m, lr):
        return make_optimizer(NetSpec.from_dict({**spec.to_dict(), "lr": lr}), m)

    return lr_range_test(model, optimizer, loss_of, **kw)


def test_lr_range_test_leaves_the_model_untouched_and_suggests_a_rate():
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_test_on(model, spec, start=1e-4, end=10.0, steps=80)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert len(result.lrs) == len(result.losses) <= 80
    assert np.all(np.diff(np.log(result.lrs)) == pytest.approx(np.log(10.0 / 1e-4) / 79))
    assert result.suggested is not None and 1e-4 < result.suggested < 10.0
    # the suggestion is where the loss still falls: below the lr of the smallest smoothed loss
    assert result.suggested <= result.lrs[int(np.nanargmin(result.smoothed))]


def test_lr_range_test_stops_on_divergence_and_can_be_cancelled():
    spec = preset_spec("toy-2d")
    model = build_model(spec)
    spec = NetSpec.from_dict({**spec.to_dict(), "optimizer": "sgd"})
    result = lr_test_on(model, spec, start=1e-2, end=1e4, steps=100)
    assert result.stopped_early and len(result.lrs) < 100
    calls = []
    assert lr_test_on(model, spec, steps=50, progress=calls.append, cancelled=lambda: len(calls) >= 5) is None
    assert len(calls) == 5


def test_suggestion_of_hostile_curves():
    lrs = np.logspace(-4, 0, 6)
    assert suggest_lr(lrs, np.full(6, np.nan)) is None
    assert suggest_lr(lrs, np.array([1.0, 2, 3, 4, 5, 6])) is None  # never falls
    assert suggest_lr(lrs, np.array([1.0, 0.9, 0.5, 0.4, np.nan, np.inf])) == pytest.approx(lrs[1])


def test_toy_runs_keep_health_and_restore_it():
    ws = NetworkWorkspace()
    ws.set_preset("deep-sigmoid")
    run = ws.start_run(20)
    records = [r for r in train_toy(ws.spec(), DATA, 20, record_every=5, boundary_every=10**6)
               if r["type"] == "step"]
    ws.add_records(records)
    assert run.health("grad_norms").shape == (4, 7) and run.health("dead").shape == (4, 6)
    assert np.isnan(run.health("dead")).all()
    saved = ToyRun.model_validate(json.loads(json.dumps(run.thinned().model_dump(mode="json"))))
    assert saved.grad_norms == run.grad_norms
    old = run.model_dump(mode="json")
    for key in HEALTH_KEYS:
        old.pop(key)
    assert ToyRun.model_validate(old).health("update_ratios").shape == (0, 0)  # a session from before
    bad = run.model_dump(mode="json")
    bad["grad_norms"] = bad["grad_norms"][:2]
    with pytest.raises(ValueError):
        ToyRun.model_validate(bad)
    hostile = run.model_dump()
    hostile["grad_norms"][0][0] = math.inf
    assert ToyRun.model_validate(hostile).grad_norms[0][0] is None
