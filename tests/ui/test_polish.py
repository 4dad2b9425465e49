"""Issue 12, points 5-9 outside the graph canvas: stable layout, attention maps, forms, dark theme, runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFormLayout,
    QScrollArea,
    QSpinBox,
    QWidget,
)

from explorer.ui.common.forms import install_wheel_guard


def wheel(widget: QWidget, notches: int = -1) -> None:
    """A synthesized mouse-wheel turn over the middle of `widget` (negative: towards the user)."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


# -- point 7: the wheel over a field without focus scrolls the form -----------------------------------
@pytest.fixture
def long_form(qtbot):
    install_wheel_guard()
    inner = QWidget()
    form = QFormLayout(inner)
    spins = []
    for i in range(30):
        spin = QSpinBox()
        spin.setRange(0, 100)
        spin.setValue(50)
        form.addRow(f"field {i}", spin)
        spins.append(spin)
    combo = QComboBox()
    combo.addItems(["auto", "cpu", "cuda"])
    form.addRow("Device", combo)
    area = QScrollArea()
    area.setWidget(inner)
    area.setWidgetResizable(True)
    area.resize(300, 200)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    return area, spins, combo


def test_wheel_over_an_unfocused_field_scrolls_the_form_and_leaves_the_field(qtbot, long_form):
    area, spins, combo = long_form
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    wheel(spins[1], -1)
    assert spins[1].value() == 50
    assert bar.value() > 0
    before = bar.value()
    wheel(spins[2].lineEdit(), -1)  # the line edit inside the spin box gets the event first
    assert spins[2].value() == 50 and bar.value() > before
    wheel(combo, -1)
    assert combo.currentText() == "auto"
    assert not combo.hasFocus() and not spins[1].hasFocus()


def test_a_focused_field_still_takes_the_wheel(qtbot, long_form):
    _area, spins, combo = long_form
    spins[0].setFocus()
    qtbot.waitUntil(spins[0].hasFocus)
    wheel(spins[0], 1)
    assert spins[0].value() == 51


def test_the_wheel_over_the_pretraining_form_leaves_device_alone(qtbot):
    from explorer.ui.pretrain.panel import PretrainPanel

    install_wheel_guard()
    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 420)  # short: the form scrolls
    panel.show()
    qtbot.waitExposed(panel)
    device = panel.form.device
    before = device.currentText()
    area = next(a for a in panel.findChildren(QScrollArea) if a.isAncestorOf(device))
    wheel(device, -3)
    wheel(device, 3)
    wheel(device, -1)
    assert device.currentText() == before
    assert area.verticalScrollBar().value() > 0
    panel.shutdown()


# -- point 8: every plot's legend and axes are readable in both themes ---------------------------------
def _darkest_contrast_in(widget, rect, background: str) -> float:
    """The highest contrast against `background` among the pixels of `rect` of the widget's picture."""
    from explorer.ui.common.theme import contrast_ratio

    image = widget.grab().toImage()
    best = 1.0
    for x in range(max(0, rect.left()), min(image.width(), rect.right())):
        for y in range(max(0, rect.top()), min(image.height(), rect.bottom())):
            best = max(best, contrast_ratio(image.pixelColor(x, y).name(), background))
    return best


def _legend_text_contrast(plot_widget, background: str) -> float:
    legend = plot_widget.getPlotItem().legend
    assert legend.items, "the legend has a label to read"
    worst = 21.0
    for _sample, label in legend.items:
        rect = plot_widget.mapFromScene(label.mapRectToScene(label.boundingRect())).boundingRect()
        worst = min(worst, _darkest_contrast_in(plot_widget, rect, background))
    return worst


def _plots_with_legends(qtbot):
    """(owner with set_theme, its PlotWidgets) for every plot of the app that has a legend."""
    from explorer.core.gpt.runs import PretrainRun
    from explorer.ui.network.training import TrainView
    from explorer.ui.pretrain.plots import TrainingPlots

    plots = TrainingPlots()
    plots.add_run(PretrainRun(1, "Run 1 · tiny · shakespeare", {}, {}))
    toy = TrainView()
    toy.loss_plot.plot([0, 1], [1, 0], name="run 1: adam lr 0.03, 16-16")
    owners = []
    for owner, widgets in ((plots, [plots.loss_widget, plots.lr_widget, plots.grad_widget]),
                           (toy, [toy.loss_plot, toy.acc_plot, toy.boundary_plot])):
        qtbot.addWidget(owner)
        owner.resize(900, 700)
        owner.show()
        owners.append((owner, widgets))
    qtbot.waitExposed(toy)
    return owners


@pytest.mark.parametrize("first,second", [("light", "dark"), ("dark", "light")])
def test_legend_and_axis_text_stay_readable_after_a_theme_switch(qtbot, first, second):
    from explorer.ui.common.theme import contrast_ratio, get_theme

    owners = _plots_with_legends(qtbot)
    for theme_name in (first, second):
        theme = get_theme(theme_name)
        for owner, widgets in owners:
            owner.set_theme(theme)
            for widget in widgets:
                for side in ("left", "bottom"):
                    tick_colour = widget.getPlotItem().getAxis(side).textPen().color().name()
                    assert contrast_ratio(tick_colour, theme["panel"]) >= 4.5, (widget, side, theme_name)
                if widget.getPlotItem().legend is not None:
                    assert _legend_text_contrast(widget, theme["panel"]) >= 4.5, (widget, theme_name)


# -- point 5: status lines and banners have fixed heights; nothing moves under the cursor --------------
LONG = ("A very long status line that goes on and on, far wider than any panel of the window, " * 8).strip()


def _geometry(panel, widgets) -> list[tuple[int, int, int, int]]:
    QApplication.processEvents()
    out = []
    for widget in widgets:
        corner = widget.mapTo(panel, QPoint(0, 0))
        out.append((corner.x(), corner.y(), widget.width(), widget.height()))
    return out


def test_an_elided_label_keeps_its_height_and_tells_all_in_its_tooltip(qtbot):
    from explorer.ui.common.labels import ElidedLabel

    label = ElidedLabel("short", lines=2)
    label.setToolTip("what this line is for")
    qtbot.addWidget(label)
    label.resize(300, label.height())
    label.show()
    height = label.height()
    assert not label.is_elided() and label.toolTip() == "what this line is for"
    label.setText(LONG)
    assert label.height() == height
    assert label.is_elided() and label.shown_text().endswith("…")
    assert label.shown_text().count("\n") == 1  # two lines, no more
    assert label.text() == LONG and label.toolTip().startswith(LONG)
    assert "what this line is for" in label.toolTip()
    label.setText("short again")
    assert label.height() == height and not label.is_elided()


def test_pretraining_buttons_stay_put_when_a_banner_or_a_long_status_comes_and_goes(qtbot):
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1400, 860)
    panel.show()
    qtbot.waitExposed(panel)
    watched = [panel.train_button, panel.pause_button, panel.stop_button, panel.retrain_button,
               panel.plots.x_axis, panel.plots.loss_widget, panel.sample_button]
    before = _geometry(panel, watched)
    panel.show_message(LONG, "error")
    assert panel.banner.isVisible()
    assert _geometry(panel, watched) == before
    panel.progress_label.setText(LONG)
    assert _geometry(panel, watched) == before
    panel.hide_message()
    assert _geometry(panel, watched) == before
    assert panel.banner.isHidden() and panel.progress_label.toolTip().startswith(LONG)
    panel.shutdown()


def test_expression_run_button_and_player_stay_put_under_an_error_and_a_long_status(qtbot):
    from PySide6.QtWidgets import QPushButton

    from explorer.ui.expression.panel import ExpressionPanel

    panel = ExpressionPanel()
    qtbot.addWidget(panel)
    panel.resize(1600, 1000)
    panel.show()
    qtbot.waitExposed(panel)
    panel.wait_computed()  # the program's params fill the leaf editor first: that may move things
    watched = [panel.run_button, panel.leaves, panel.graph, *panel.player.findChildren(QPushButton)]
    before = _geometry(panel, watched)
    panel.error_label.setText("⚠ " + LONG + "\nThe graph shows the last valid program.")
    panel.error_label.setVisible(True)
    panel.status.setText(LONG)
    panel.timing_label.setText("traced in 3 ms\n" + LONG)
    assert _geometry(panel, watched) == before
    panel.error_label.setVisible(False)
    assert _geometry(panel, watched) == before


def test_toy_training_plots_and_buttons_stay_put_under_a_long_status(qtbot):
    from explorer.ui.network.training import TrainView

    view = TrainView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    qtbot.waitExposed(view)
    watched = [view.train_button, view.loss_plot, view.boundary_plot]
    before = _geometry(view, watched)
    view._message(LONG, error=True)
    assert _geometry(view, watched) == before
    assert view.status.toolTip().startswith(LONG)


def test_network_iteration_graph_and_player_stay_put_under_a_long_phase_text_and_the_skip_note(qtbot):
    from PySide6.QtWidgets import QPushButton

    from explorer.ui.network.iteration import IterationView

    view = IterationView()
    qtbot.addWidget(view)
    view.resize(1400, 860)
    view.show()
    qtbot.waitExposed(view)
    watched = [view.graph, view.phases, view.params, *view.player.findChildren(QPushButton)]
    before = _geometry(view, watched)
    view.status.setText("<span>Iteration 1 · step 3/12</span><br>" + LONG + " " + LONG)
    assert _geometry(view, watched) == before
    view.skip_note.setVisible(True)
    assert _geometry(view, watched) == before


def test_trace_tab_graph_stays_put_under_long_status_and_memory_lines(qtbot):
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1400, 860)
    panel.show()
    from explorer.ui.pretrain.trace_step import TraceTab

    tab = panel.findChild(TraceTab)
    panel.tabs.setCurrentWidget(tab)
    qtbot.waitExposed(panel)
    watched = [tab.button, tab.view, tab.player]
    before = _geometry(tab, watched)
    tab.status.setText(LONG)
    tab.memory_label.setText(LONG)
    assert _geometry(tab, watched) == before
    assert tab.status.toolTip().startswith(LONG)
    panel.shutdown()


# -- point 9: Train and Retrain are distinct; a disabled Train says why beside it ----------------------
def test_a_disabled_train_says_why_next_to_the_button(qtbot):
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1400, 860)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.train_button.isEnabled() and not panel.retrain_button.isEnabled()  # nothing to restart
    assert panel.train_reason.text() == ""
    panel.workspace.set_preset("gpt2-124m")
    panel.form.set_values({"device": "cpu"})  # 124M parameters never train on a CPU, on any machine
    qtbot.waitUntil(lambda: not panel.train_button.isEnabled())
    reason = panel.train_reason
    assert reason.isVisible() and "Cannot train here" in reason.text() and "CPU" in reason.text()
    QApplication.processEvents()
    button = panel.train_button.geometry()
    beside = reason.geometry()
    assert reason.parentWidget() is panel.train_button.parentWidget()
    assert beside.left() > panel.retrain_button.geometry().right()
    assert button.top() <= beside.center().y() <= button.bottom()
    panel.workspace.set_preset("tiny")
    qtbot.waitUntil(panel.train_button.isEnabled)
    assert panel.train_reason.text() == ""
    panel.shutdown()


# -- point 6: attention maps: labels always, prompts up to the context length, colour bar, hover -------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint of 2 steps of a 2-layer, 2-head model with a 16-token context (character tokens)."""
    from explorer.core.gpt.train import Trainer, TrainSettings

    folder = tmp_path_factory.mktemp("attention")
    corpus = folder / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    config = {"vocab_size": 64, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
              "drop_rate": 0.0}
    trainer = Trainer(config, TrainSettings(steps=2, batch_size=2, eval_every=0, sample_every=0,
                                            device="cpu", corpus_path=str(corpus)))
    for _ in trainer.run():
        pass
    path = folder / "checkpoint.safetensors"
    trainer.save_checkpoint(path)
    return str(path)


def _attention_tab(qtbot, size):
    from explorer.ui.pretrain.attention import AttentionTab

    tab = AttentionTab(panel=None)
    qtbot.addWidget(tab)
    tab.resize(*size)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def test_a_prompt_longer_than_the_context_is_cut_with_a_visible_note(qtbot, tiny_checkpoint):
    from explorer.ui.pretrain.attention import compute_attention

    prompt = "the lazy dog jumps over the quick brown fox"  # 43 characters, context 16
    result = compute_attention(tiny_checkpoint, prompt, "Run 1")
    assert len(result.tokens) == 16 and "".join(result.tokens) == prompt[-16:]
    assert result.maps.shape == (2, 2, 16, 16)
    assert result.cut == 27 and "43 tokens" in result.cut_note() and "first 27" in result.cut_note()
    tab = _attention_tab(qtbot, (1200, 800))
    tab.show_result(result)
    assert tab.cut_note.isVisible() and tab.cut_note.text() == result.cut_note()
    short = compute_attention(tiny_checkpoint, "the fox", "Run 1")
    assert short.cut == 0 and len(short.tokens) == 7
    tab.show_result(short)
    assert tab.cut_note.isHidden()


def test_token_labels_thin_out_in_a_small_window_but_never_vanish(qtbot, tiny_checkpoint):
    from explorer.ui.pretrain.attention import compute_attention, token_ticks

    result = compute_attention(tiny_checkpoint, "over the lazy dog, the fox", "Run 1")
    big = _attention_tab(qtbot, (1600, 1000))
    big.show_result(result)
    assert [label for _x, label in big.axis_ticks("left")] == [t.replace(" ", "␣") for t in result.tokens]
    small = _attention_tab(qtbot, (420, 360))
    small.show_result(result)
    QApplication.processEvents()
    for side in ("left", "bottom"):
        ticks = small.axis_ticks(side)
        assert 2 <= len(ticks) < len(result.tokens), (side, ticks)
    assert token_ticks(["a"] * 100, 100, 10) == [(i + 0.5, "a") for i in range(0, 100, 10)]
    assert token_ticks(["a_very_long_token"], 100, 10)[0][1] == "a_ver…"


def test_hover_reads_out_the_weight_and_a_colour_bar_gives_the_scale(qtbot, tiny_checkpoint):
    from explorer.core.numbers import fmt_number
    from explorer.ui.pretrain.attention import compute_attention

    result = compute_attention(tiny_checkpoint, "the quick fox", "Run 1")
    tab = _attention_tab(qtbot, (1200, 800))
    tab.show_result(result)
    assert len(tab.canvas.ci.items) == 4  # the grid holds the heatmaps only; the bar is beside it
    assert tab.scale_view.isVisible() and tuple(tab.colour_bar.levels()) == (0.0, 1.0)
    # cell (query 5, key 2) of layer 0, head 1: the second heatmap
    tab.canvas.scene().sigMouseMoved.emit(tab.cell_centre(1, 5, 2))
    weight = fmt_number(float(result.maps[0, 1, 5, 2]))
    assert tab.hover.text() == f"layer 0 · head 1: query 5 ('u') attends to key 2 ('e'): {weight}"
    tab.canvas.scene().sigMouseMoved.emit(tab.cell_centre(3, 1, 4))  # layer 1, head 1, a masked cell
    assert tab.hover.text().startswith("layer 1 · head 1: query 1 ('h') attends to key 4") and \
        tab.hover.text().endswith(": 0")


def test_the_wheel_over_the_network_form_scrolls_it_and_changes_nothing(qtbot):
    from explorer.ui.network.panel import NetworkPanel

    install_wheel_guard()
    panel = NetworkPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 300)  # short: the form scrolls
    panel.show()
    qtbot.waitExposed(panel)
    form = panel.form
    before = (form.optimizer.currentText(), form.loss.currentText(), form.lr.value(), form.batch.value())
    area = next(a for a in panel.findChildren(QScrollArea) if a.isAncestorOf(form.optimizer))
    # a width spin box inside the hidden-layers table: the table cannot scroll, so the form does
    width = form.layers.cellWidget(0, 0)
    width_before = width.value()
    wheel(width, -1)
    assert width.value() == width_before and area.verticalScrollBar().value() > 0
    for field in (form.optimizer, form.loss, form.lr, form.batch):
        wheel(field, -1)
    assert (form.optimizer.currentText(), form.loss.currentText(), form.lr.value(),
            form.batch.value()) == before


def test_runs_are_named_with_their_corpus_in_the_list_the_legend_and_the_export(qtbot, tmp_path):
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    corpus = tmp_path / "shakespeare.txt"
    corpus.write_text("to be or not to be " * 50, encoding="utf-8")
    run = panel.workspace.new_run(panel.form.config_dict(), panel.form.settings_dict(), str(corpus))
    builtin = panel.workspace.new_run(panel.form.config_dict(), panel.form.settings_dict(), None)
    items = [panel.history.list.item(i) for i in range(panel.history.list.count())]
    assert any("shakespeare.txt" in item.text() for item in items)
    assert any("pydoc" in item.text() for item in items)
    legend = [label.text for _sample, label in panel.plots.loss.legend.items]
    assert any("shakespeare.txt" in text for text in legend) and any("pydoc" in text for text in legend)
    panel.export_run(run.run_id, str(tmp_path / "out"))
    assert "shakespeare.txt" in panel.banner.text()
    assert builtin.name.endswith("pydoc")
    panel.shutdown()
