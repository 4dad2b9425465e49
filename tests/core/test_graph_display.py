"""The display model of a card: titles, subtitles and tensor facts, as the canvas will draw them."""

from explorer.commands.graph import trace_program
from explorer.core.autograd.explain import describe_event
from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.display import build_display
from explorer.core.lang.examples import load_example
from explorer.core.lang.program import parse


def _tensor_basics():
    tr = trace_program(parse(load_example("tensors_basics")))
    return tr, build_display(tr)


def test_no_grad_ops_show_their_op_and_tensor_facts_never_const():
    tr, model = _tensor_basics()
    ops = {did: info for did, info in model.info.items() if tr.nodes[did].inputs}
    assert {tr.nodes[d].op for d in ops} >= {"to", "reshape", "view", "T", "matmul"}
    for info in ops.values():
        assert "no grad" in info["subtitle"] and "const" not in info["subtitle"], info
        assert info["no_grad"] and info["facts"], info
    named_t = next(i for d, i in ops.items() if tr.nodes[d].name == "T")
    assert named_t["subtitle"] == "transpose · no grad"
    assert "stride 1,3" in named_t["facts"] and "non-contiguous" in named_t["facts"]
    assert named_t["facts"].startswith("3×2 · int64")
    assert named_t["layout"] == "stride 1,3 · non-contig."
    assert "float32" in next(i for d, i in ops.items() if tr.nodes[d].name == "F")["facts"]


def test_an_unnamed_op_is_labelled_by_its_op_not_by_a_variable_name():
    tr, model = _tensor_basics()
    titles = [info["title"] for info in model.info.values()]
    assert len(titles) == len(set(titles)), titles  # the bug: two cards both named "T"
    unnamed = [did for did in model.info if tr.nodes[did].inputs and not tr.nodes[did].name]
    assert unnamed and all(model.info[d]["title"] == ".T" for d in unnamed)
    assert all(model.info[d]["subtitle"] == "transpose · no grad" for d in unnamed)


def test_the_status_line_names_the_op_of_a_no_grad_value():
    tr, _model = _tensor_basics()
    timeline = Timeline(tr)
    texts = [describe_event(timeline, k) for k in range(1, timeline.length + 1)]
    assert not any("constant" in t for t in texts[1:]), texts
    assert any(t.endswith("(no grad: autograd records no backward)") and "G = matmul(A, Aᵀ)" in t
               for t in texts), texts
