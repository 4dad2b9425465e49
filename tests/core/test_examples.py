"""The example programs of the Examples menu: each has a title, runs, and gives its expected numbers."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from explorer.core.autograd.gradcheck import compare_grads
from explorer.core.lang.program import ExprError, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
REQUIRED = ["seed_sigmoid_bce", "tensors_basics", "one_hidden_layer", "softmax_cross_entropy"]


def load(name: str):
    return parse((EXAMPLES / f"{name}.expr").read_text(encoding="utf-8"))


def test_every_example_has_a_title_and_runs():
    paths = sorted(EXAMPLES.glob("*.expr"))
    assert {p.stem for p in paths} >= set(REQUIRED)
    for path in paths:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Title: ") and len(first) > len("# Title: ") + 3, path.name
        if path.stem.startswith("error_"):
            continue  # the examples of autograd's errors: each stops on its line (below)
        report = compare_grads(parse(path.read_text(encoding="utf-8")))
        assert report.max_abs_error < 1e-4, path.name


# the programs that show the errors learners meet: the line, and what autograd needed
ERRORS = {
    "error_inplace": (10, ["changed in place", "version 0", "version 1"]),
    "error_backward_twice": (8, ["retain_graph=True"]),
    "error_nonscalar_backward": (7, ["gradient=", "`.sum()`"]),
    "error_update_without_no_grad": (9, ["leaf that requires grad", "torch.no_grad()"]),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_examples_stop_on_their_line_and_say_what_autograd_needed(name):
    line, needles = ERRORS[name]
    with pytest.raises(ExprError) as info:
        load(name).run()
    assert info.value.line == line, str(info.value)
    for needle in needles:
        assert needle in info.value.message, info.value.message


def test_reading_grad_of_a_non_leaf_warns_as_torch_does():
    run = load("warning_nonleaf_grad").run()
    assert "warning (line 11): `.grad` of a non-leaf tensor is None" in run.printed
    assert "y.grad = None" in run.printed and "x.grad = tensor(36.)" in run.printed


def test_the_seeds_neuron_in_torch_gives_the_reference_numbers_both_ways():
    run = load("seed_neuron_torch").run()
    assert "torch.autograd.grad: -0.0898262" in run.printed and "backward(): -0.0898262" in run.printed
    assert [p.kind for p in run.passes] == ["grad", "grad", "backward"]
    assert run.params["w"].grad.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert run.params["b"].grad.item() == pytest.approx(-0.0816603, abs=1e-6)


def test_the_seeds_module_trains_with_sgd_one_iteration_per_backward():
    from explorer.core.autograd.trace import trace_program

    pt = trace_program(load("seed_network_module"))
    assert len(pt.iterations) == 5 and pt.run.steps == 5
    assert all(pt.losses[i + 1] < pt.losses[i] for i in range(4)), pt.losses
    assert list(pt.run.params) == ["model.fc1.weight", "model.fc1.bias", "model.fc2.weight", "model.fc2.bias"]
    last = pt.last
    assert any(e["kind"] == "step" for e in last.events)
    assert {n.torch_name for n in last.nodes.values()} >= {"AddmmBackward0", "ReluBackward0",
                                                           "SigmoidBackward0", "BinaryCrossEntropyBackward0"}


def test_seed_example_reference_numbers():
    report = compare_grads(load("seed_sigmoid_bce"))
    assert round(report.output.item(), 4) == 0.0852
    assert round(report.params["w"].autograd.item(), 4) == -0.0898
    assert round(report.params["b"].autograd.item(), 4) == -0.0817
    assert report.params["w"].manual.item() == pytest.approx(-0.0898263, abs=1e-6)


def test_tensor_basics_example():
    env = load("tensors_basics").run().env
    assert env["A"].dtype == torch.int64 and env["F"].dtype == torch.float32
    assert env["R"].shape == (3, 2) and env["V"].shape == (6,)
    assert not env["T"].is_contiguous()
    assert env["G"].tolist() == [[14, 32], [32, 77]] and env["G"].dtype == torch.int64


def test_one_hidden_layer_example_matches_the_same_net_in_torch():
    program = load("one_hidden_layer")
    assert program.param_names == ["W1", "b1", "W2", "b2"]
    run = program.run()
    P = run.params
    h = torch.relu(F.linear(run.env["x"], P["W1"], P["b1"]))
    expected = F.binary_cross_entropy(torch.sigmoid(F.linear(h, P["W2"], P["b2"])), run.env["y"])
    assert run.output.item() == pytest.approx(expected.item(), rel=1e-6)
    assert run.env["h"].shape == (1, 5) and run.output.numel() == 1
    # the seed is chosen so that most hidden units are alive: a ReLU net where every unit is dead
    # would teach nothing
    assert int((run.env["h"] > 0).sum()) >= 3


def test_softmax_cross_entropy_example_equals_cross_entropy():
    run = load("softmax_cross_entropy").run()
    logits, target = run.env["logits"], run.env["target"]
    assert run.output.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    assert torch.allclose(run.env["p"].sum(1), torch.ones(2))
