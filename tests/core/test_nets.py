"""Network specs, presets and the recorded training iteration, checked against torch directly."""

import numpy as np
import pytest
import torch

from explorer.core.autograd.timeline import Timeline
from explorer.core.mlp.network import (
    PHASE_KINDS,
    PRESETS,
    IterationError,
    NetSession,
    NetSpec,
    NetSpecError,
    build_model,
    example_batch,
    make_loss,
    parameter_count,
    preset_spec,
)


def torch_grads(spec: NetSpec) -> dict[str, np.ndarray]:
    """The gradients torch computes for the spec's example batch, with no recording in the way."""
    model = build_model(spec)
    x, y = example_batch(spec)
    make_loss(spec)(model(x), y).backward()
    return {n: p.grad.double().numpy() for n, p in model.named_parameters()}


def grads_after_backward(iteration) -> dict[str, np.ndarray]:
    """The grads as the player shows them on the last backward phase."""
    last = [p for p in iteration.phases if p.kind == "backward"][-1]
    return {n: s.grad for n, s in last.params.items()}


def test_presets_exist_and_validate():
    assert {"seed", "mlp-50-30-20-3", "toy-2d"} <= set(PRESETS)
    for name in PRESETS:
        preset_spec(name).validate()


def test_parameter_counts():
    mlp = preset_spec("mlp-50-30-20-3")
    assert parameter_count(mlp) == 2213
    assert parameter_count(build_model(mlp)) == 2213
    assert parameter_count(preset_spec("seed")) == 10 * 5 + 5 + 5 + 1


def test_seed_preset_is_the_seed_network():
    spec = preset_spec("seed")
    model = build_model(spec)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    assert isinstance(make_loss(spec), torch.nn.BCELoss)
    x, y = example_batch(spec)
    assert x.shape == (1, 10) and y.tolist() == [[1.0]]
    session = NetSession(spec)
    assert isinstance(session.optimizer, torch.optim.SGD)
    assert session.optimizer.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("preset", ["seed", "mlp-50-30-20-3"])
def test_displayed_grads_equal_torch(preset):
    spec = preset_spec(preset)
    expected = torch_grads(spec)
    iteration = NetSession(spec).run_iteration()
    shown = grads_after_backward(iteration)
    assert set(shown) == set(expected)
    for name, grad in expected.items():
        np.testing.assert_allclose(shown[name], grad, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(iteration.grads[name], grad, rtol=1e-6, atol=1e-9)


def test_phases_cover_one_iteration_in_order():
    iteration = NetSession(preset_spec("seed")).run_iteration()
    kinds = [p.kind for p in iteration.phases]
    # The phases come in the order of PHASE_KINDS, each present.
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == list(PHASE_KINDS)
    assert [p.module for p in iteration.phases if p.kind == "forward"] == ["fc1", "relu1", "fc2", "sigmoid2"]
    accumulated = [p.param for p in iteration.phases if p.kind == "backward" and p.param]
    assert sorted(accumulated) == sorted(n for n, _ in build_model(preset_spec("seed")).named_parameters())
    # The output layer's parameters get their gradient before the first layer's (engine order).
    assert accumulated.index("fc2.weight") < accumulated.index("fc1.weight")
    assert all(p.text for p in iteration.phases)


def test_backward_phases_fill_grads_one_by_one():
    iteration = NetSession(preset_spec("seed")).run_iteration()
    backward = [p for p in iteration.phases if p.kind == "backward"]
    filled = [sum(s.grad is not None for s in p.params.values()) for p in backward]
    assert filled[0] == 0 and filled[-1] == 4
    assert filled == sorted(filled)


def test_sgd_step_is_w_minus_lr_grad():
    spec = preset_spec("seed")
    session = NetSession(spec)
    before = {n: p.detach().double().numpy().copy() for n, p in session.model.named_parameters()}
    iteration = session.run_iteration()
    for phase in (p for p in iteration.phases if p.kind == "step"):
        state = phase.params[phase.param]
        expected = before[phase.param] - spec.lr * iteration.grads[phase.param]
        np.testing.assert_allclose(state.value, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(state.delta, -spec.lr * iteration.grads[phase.param], rtol=1e-4, atol=1e-7)
        assert "lr·grad" in phase.text


def test_adam_first_step_moves_by_lr_times_sign():
    spec = preset_spec("mlp-50-30-20-3")
    session = NetSession(spec)
    iteration = session.run_iteration()
    phase = next(p for p in iteration.phases if p.kind == "step" and p.param == "fc3.bias")
    grad = iteration.grads["fc3.bias"]
    # Adam's first update is lr * g / (|g| + eps): lr times the sign of the gradient.
    np.testing.assert_allclose(phase.params["fc3.bias"].delta, -spec.lr * np.sign(grad), rtol=1e-3)
    assert "m̂" in phase.text


def test_skipped_zero_grad_doubles_grads_for_the_same_batch():
    session = NetSession(preset_spec("seed"))
    first = session.run_iteration(optimizer_step=False)
    second = session.run_iteration(skip_zero_grad=True, optimizer_step=False)
    for name, grad in first.grads.items():
        np.testing.assert_allclose(second.grads[name], 2 * grad, rtol=1e-6)
        np.testing.assert_allclose(grads_after_backward(second)[name], 2 * grad, rtol=1e-6)
    assert "skipped" in second.phases[0].title
    # With zero_grad the next iteration starts over instead.
    third = session.run_iteration(optimizer_step=False)
    for name, grad in first.grads.items():
        np.testing.assert_allclose(third.grads[name], grad, rtol=1e-6)


def test_skipped_zero_grad_after_a_small_step_nearly_doubles():
    session = NetSession(preset_spec("seed"))
    first = session.run_iteration()
    second = session.run_iteration(skip_zero_grad=True)
    np.testing.assert_allclose(second.grads["fc2.bias"], 2 * first.grads["fc2.bias"], rtol=0.05)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"loss": "bce", "output_activation": "none"}, "Sigmoid"),
        ({"loss": "cross-entropy", "output_size": 1}, "output size"),
        ({"hidden": [4, 4], "activations": ["relu"]}, "one activation per hidden layer"),
        ({"lr": 0.0}, "learning rate"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ],
)
def test_invalid_specs_explain_themselves(change, message):
    data = preset_spec("toy-2d").to_dict() | change
    with pytest.raises(NetSpecError, match=message):
        NetSpec.from_dict(data).validate()


def test_spec_round_trips_through_dict_and_model_is_seeded():
    spec = preset_spec("toy-2d")
    again = NetSpec.from_dict(spec.to_dict() | {"unknown": 1})
    assert again == spec
    a, b = build_model(spec), build_model(again)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "gelu", "none"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_every_activation_and_optimizer_runs(act, opt):
    spec = NetSpec(3, [4], [act], 1, "none", "mse", opt, 0.01, 0.9, 0.0, 2, 1)
    iteration = NetSession(spec).run_iteration()
    assert np.isfinite(iteration.loss)
    assert sum(p.kind == "step" for p in iteration.phases) == 4


def test_a_failing_tracer_fails_the_iteration_and_leaves_grads_as_they_were(monkeypatch):
    import explorer.core.mlp.network as network_module

    def broken(fn, **kwargs):
        fn()[0].backward()  # it accumulates grads before failing: the session must undo that
        raise RuntimeError("tracer broke")

    monkeypatch.setattr(network_module, "trace", broken)
    session = NetSession(preset_spec("seed"))
    message = "could not record this training iteration: RuntimeError: tracer broke"
    with pytest.raises(IterationError, match=message):
        session.run_iteration(skip_zero_grad=True)
    assert all(p.grad is None for p in session.model.parameters())
    assert session.iterations == 0


def test_graph_steps_map_each_phase_to_its_timeline_step():
    iteration = NetSession(preset_spec("seed")).run_iteration()
    timeline = Timeline(iteration.trace)
    steps = iteration.graph_steps
    assert len(steps) == len(iteration.phases) + 1 and steps[0] == 0
    for phase, k in zip(iteration.phases, steps[1:], strict=True):
        if phase.kind == "zero_grad":
            assert k == 0
        elif phase.kind == "forward":  # the layer's last op: its output is known at that step
            direction, nid = timeline.event(k)
            assert direction == "forward" and timeline.trace.nodes[nid].module == phase.module
        elif phase.kind == "loss":
            assert k == timeline.forward_length
        elif phase.kind == "backward":
            assert timeline.event(k) == ("backward", phase.node_id)
        else:
            assert k == timeline.length
    assert steps == sorted(steps)
