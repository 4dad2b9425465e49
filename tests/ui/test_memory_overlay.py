"""The memory overlay: badges of what each node keeps, freed as backward runs, the legend, the inspector."""

from __future__ import annotations

import os

import pytest
from PySide6.QtGui import QImage, QPainter

from explorer.core.autograd import saved
from explorer.core.autograd.trace import trace
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.program import parse
from explorer.core.numbers import format_bytes
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.graph import memory
from explorer.ui.graph.inspector import Inspector
from explorer.ui.graph.view import GraphView


@pytest.fixture
def overlay_on():
    switch = memory.setting()
    switch.set_enabled(True)
    yield switch
    switch.set_enabled(False)


@pytest.fixture
def view(qtbot):
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(1000, 560)
    v.show()
    v.set_trace(trace(parse(SEED_SOURCE).callable()), step=0)
    return v


def _by_name(tr, name):
    return next(n.id for n in tr.nodes.values() if n.name == name)


def test_badges_appear_with_the_switch_and_are_freed_in_backward(qtbot, view, overlay_on):
    tr = view.graph_scene.trace
    a = _by_name(tr, "a")  # sigmoid keeps its output
    badge = view.memory.badges[a]
    assert badge.text == "4 B: output"
    timeline = view.timeline
    view.set_step(0)
    assert not badge.isVisible()
    view.set_step(timeline.forward_length)
    assert badge.isVisible() and not badge.freed
    view.set_step(timeline.step_of("backward", a))
    assert badge.freed
    overlay_on.set_enabled(False)
    assert view.memory.badges == {} and badge.scene() is None


def test_legend_text_gives_the_total_beside_weights_and_grads(view, overlay_on):
    tr = view.graph_scene.trace
    weights, grads = saved.param_bytes(tr)
    assert weights == 8 and grads == 8  # w and b, float32 scalars
    lines = memory.legend_lines(tr.saved_memory, weights, grads, view.timeline.saved_bytes_at(0))
    # sigmoid keeps a (which BCE shares), BCE the target 1.0: x = 1.1 is a number MulBackward0 keeps itself
    assert lines[0] == "Saved for backward: 8 B"
    assert "weights 8 B · their grads 8 B" in lines


def test_inspector_lists_saved_tensors_and_the_reason(qtbot, view):
    inspector = Inspector()
    qtbot.addWidget(inspector)
    tr = view.graph_scene.trace
    inspector.show_node(tr.nodes[_by_name(tr, "a")], title="a")
    text = inspector.saved_label.text().replace("\u200b", "")  # the break opportunity after the dot
    assert "sigmoid keeps its output a: the backward needs a(1 − a)" in text
    assert "output" in text and "SigmoidBackward0._saved_result" in text
    assert not inspector.saved_box.isHidden()
    inspector.show_node(tr.nodes[_by_name(tr, "w")], title="w")  # a parameter keeps nothing
    assert inspector.saved_box.isHidden()


def test_the_menu_action_comes_from_the_table_and_switches_every_view(qtbot, view, overlay_on):
    spec = actions.spec("app.memory_overlay")
    assert spec.menu == "View" and "backward" in spec.tooltip
    overlay_on.set_enabled(False)
    assert not view.memory.badges
    overlay_on.set_enabled(True)
    assert view.memory.badges


@pytest.mark.parametrize("name", ["light", "dark"])
def test_overlay_draws_in_both_themes(qtbot, view, overlay_on, name, tmp_path):
    view.set_theme(themes.get_theme(name))
    view.set_step(view.timeline.forward_length + 2)
    image = QImage(view.viewport().size(), QImage.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    view.render(painter)
    painter.end()
    keyword = themes.get_theme(name)["keyword"].lstrip("#").lower()
    # the legend's plot and the badges are drawn in the theme's memory colour
    found = any(f"{image.pixelColor(x, y).name()[1:]}" == keyword
                for x in range(0, image.width(), 2) for y in range(0, 160, 2))
    assert found
    out = os.environ.get("EXPLORER_SHOT_DIR")
    if out:  # a picture to look at: EXPLORER_SHOT_DIR=folder pytest tests/ui/test_memory_overlay.py
        image.save(os.path.join(out, f"memory-overlay-{name}.png"))


def test_trace_one_step_with_checkpointed_blocks_keeps_less_and_recomputes(qtbot, overlay_on):
    from explorer.core.gpt.model import GPTConfig
    from explorer.ui.pretrain.trace_step import trace_one_step

    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    source = {"checkpoint": None, "config": cfg.to_dict(), "settings": {"tokenizer": "char"}}
    plain, _ = trace_one_step(source, 6)
    ckpt, _ = trace_one_step(source, 6, checkpoint_blocks=True)
    assert ckpt.saved_memory.activations < plain.saved_memory.activations
    assert "recomputed 1× in backward at step" in ckpt.memory_text
    assert "per block: blocks.0" in plain.memory_text and "recomputed" not in plain.memory_text
    view = GraphView()
    qtbot.addWidget(view)
    view.set_trace(ckpt)
    assert any(b.text == "nothing: recomputed in backward" for b in view.memory.badges.values())


def test_estimates_show_the_traced_activations_beside_the_estimate(qtbot):
    from explorer.core.gpt.model import GPTConfig, measured_activation_bytes, memory_estimate
    from explorer.ui.pretrain.estimates import ModelEstimates

    estimates = ModelEstimates()
    qtbot.addWidget(estimates)
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    for checkpointed in (False, True):
        with qtbot.waitSignal(estimates._measure_job.sig_done, timeout=120_000):
            estimates.update_from(cfg.to_dict(), {"batch_size": 4, "device": "cpu",
                                                  "checkpoint_blocks": checkpointed}, {})
        text = estimates.activation_check.text()
        estimate = memory_estimate(cfg, 4, checkpoint_blocks=checkpointed)["activations"]
        traced = measured_activation_bytes(cfg, 4, checkpoint_blocks=checkpointed, device="cpu")
        assert f"estimate {format_bytes(estimate)} · traced {format_bytes(traced)}" in text
        assert "this machine's kernels" in text
        assert ("blocks checkpointed" in text) is checkpointed


def test_the_form_carries_the_checkpointing_setting(qtbot):
    from explorer.ui.pretrain.form import HyperparameterForm

    form = HyperparameterForm()
    qtbot.addWidget(form)
    assert form.settings_dict()["checkpoint_blocks"] is False
    form.checkpoint_blocks.setChecked(True)
    assert form.settings_dict()["checkpoint_blocks"] is True and form.values()["checkpoint_blocks"] is True
    form.set_values({"checkpoint_blocks": False})
    assert form.settings_dict()["checkpoint_blocks"] is False


def test_the_trace_tab_checkpoints_the_blocks_it_is_told(qtbot):
    from explorer.core.gpt.model import GPTConfig
    from explorer.ui.pretrain.trace_step import TraceTab, trace_one_step

    tab = TraceTab(None)
    qtbot.addWidget(tab)
    assert tab.checkpoint_choice() is False and not tab.checkpoint_which.isEnabled()
    tab.checkpoint.setChecked(True)
    assert tab.checkpoint_choice() is True and tab.checkpoint_which.isEnabled()
    tab.checkpoint_which.setText("1")
    assert tab.checkpoint_choice() == [1]
    tab.checkpoint_which.setText("one")
    assert tab.checkpoint_choice() is None
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    source = {"checkpoint": None, "config": cfg.to_dict(), "settings": {"tokenizer": "char"}}
    tr, _ = trace_one_step(source, 6, checkpoint_blocks=[1])
    assert "blocks.1 0 B (forward recomputed 1×" in tr.memory_text
    assert "blocks.0 0 B" not in tr.memory_text
    with pytest.raises(ValueError, match="no block 5"):
        trace_one_step(source, 6, checkpoint_blocks=[5])
