"""The expression workspace shows what a pasted PyTorch program did: its printed output, its iterations."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat
from PySide6.QtWidgets import QPlainTextEdit, QSlider, QWidget

from explorer.core.workspaces import expression as ew
from explorer.ui.expression.panel import OUTPUT_MAX_LINES, ExpressionPanel

WAIT = 30000


@pytest.fixture
def panel(qtbot):
    p = ExpressionPanel(source="")
    qtbot.addWidget(p)
    p.resize(1440, 860)
    p.show()
    yield p
    p.shutdown()


def _set(qtbot, panel, source):
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        panel.set_source(source)
    return panel.workspace.last


def test_print_output_appears_in_the_read_only_pane_and_is_replaced(qtbot, panel):
    out = panel.findChild(QPlainTextEdit, "outputPane")
    assert out is not None and out.isReadOnly() and out.toolTip()
    result = _set(qtbot, panel, "import torch\na = torch.tensor(2.0, requires_grad=True)\n"
                                "b = a * 3\nb.backward()\nprint('grad', a.grad.item())\n")
    assert result.ok
    assert out.toPlainText().strip() == "grad 3.0"
    _set(qtbot, panel, "import torch\na = torch.tensor(1.0, requires_grad=True)\nprint('hello')\n"
                       "(a * a).backward()\n")
    assert out.toPlainText().strip() == "hello"  # replaced, not appended


def test_an_error_keeps_the_error_line_not_the_output_pane(qtbot, panel):
    out = panel.findChild(QPlainTextEdit, "outputPane")
    _set(qtbot, panel, "import torch\na = torch.tensor(1.0, requires_grad=True)\nprint('ok')\n"
                       "(a * 2).backward()\n")
    assert out.toPlainText().strip() == "ok"
    result = _set(qtbot, panel, "import torch\na = torch.tensor(1.0, requires_grad=True)\nb = a +\n")
    assert not result.ok
    assert panel.error_label.isVisibleTo(panel)
    assert "error" not in out.toPlainText().lower()


def test_the_output_pane_is_bounded(qtbot, panel):
    text = "\n".join(f"line {i}" for i in range(OUTPUT_MAX_LINES + 500))
    panel.show_output(text)
    out = panel.findChild(QPlainTextEdit, "outputPane")
    assert out.document().blockCount() <= OUTPUT_MAX_LINES + 1
    assert out.toPlainText().endswith(f"line {OUTPUT_MAX_LINES + 499}")


LOOP = """import torch
w = torch.tensor(2.0, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.01)
for i in range(4):
    opt.zero_grad()
    loss = (w * 3.0 - 1.0) ** 2
    loss.backward()
    opt.step()
"""


def test_a_loop_offers_its_iterations_with_a_slider_and_a_loss_plot(qtbot, panel, monkeypatch):
    slider = panel.findChild(QSlider, "iterationSlider")
    _set(qtbot, panel, "import torch\na = torch.tensor(2.0, requires_grad=True)\n(a * 3).backward()\n")
    assert slider is not None and not slider.isVisibleTo(panel)  # one iteration: nothing to pick
    plot = panel.findChild(QWidget, "iterationLossPlot")  # made when a program first loops (pyqtgraph)
    assert plot is None or not plot.isVisibleTo(panel)
    result = _set(qtbot, panel, LOOP)
    plot = panel.findChild(QWidget, "iterationLossPlot")
    assert result.ok and slider.isVisibleTo(panel) and plot is not None and plot.isVisibleTo(panel)
    assert slider.maximum() == 3 and slider.value() == 3
    assert panel.iterations.label.text().startswith("iteration 4 of 4")
    curve = plot.getPlotItem().listDataItems()[0]
    assert list(curve.getData()[1])[0] == 25.0 and len(curve.getData()[1]) == 4
    runs = []
    monkeypatch.setattr(ew, "compute", lambda *a, **k: runs.append(a))  # a switch must not run it again
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        slider.setValue(0)
    assert panel.workspace.state.iteration == 0
    assert panel.iterations.label.text().startswith("iteration 1 of 4")
    trace = panel.graph.graph_scene.trace
    assert float(trace.nodes[trace.output_id].value.item()) == 25.0
    assert panel.findChild(QWidget, "iterationLossPlot") is plot  # created once
    assert runs == []


LINKED = """import torch
a = torch.tensor(2.0, requires_grad=True)
b = a * 3
c = b + 1
c.backward()
"""


def test_stepping_highlights_the_line_and_clicking_a_line_pins_its_node(qtbot, panel):
    result = _set(qtbot, panel, LINKED)
    assert result.ok
    ws, trace = panel.workspace, result.trace
    for k in range(ws.timeline.length + 1):
        ws.set_step(k)
        focus = ws.focus()
        expected = trace.nodes[focus].line if focus is not None else None
        assert panel.editor.highlighted_line() == expected
    assert {trace.nodes[n].line for n in trace.forward_order} >= {2, 3, 4}
    editor = panel.findChild(QPlainTextEdit, "programEditor")
    block = editor.document().findBlockByNumber(2)  # line 3: b = a * 3
    rect = editor.blockBoundingGeometry(block).translated(editor.contentOffset()).toRect()
    qtbot.mouseClick(editor.viewport(), Qt.LeftButton, pos=rect.center())
    selected = ws.state.selected
    assert selected is not None and trace.nodes[selected].line == 3
    assert panel.editor.highlighted_line() == 3


def test_an_error_underlines_its_line_until_it_is_fixed(qtbot, panel):
    result = _set(qtbot, panel, "import torch\na = torch.tensor(2.0, requires_grad=True)\nb = a.t(\n")
    assert not result.ok and result.error_pos is not None
    assert panel.editor.error_position() == result.error_pos
    marks = panel.editor.extraSelections()
    assert any(m.format.underlineStyle() == QTextCharFormat.WaveUnderline for m in marks)
    _set(qtbot, panel, LINKED)
    assert panel.editor.error_position() is None
    assert not any(m.format.underlineStyle() == QTextCharFormat.WaveUnderline
                   for m in panel.editor.extraSelections())
