"""The Logit lens and Per-token loss tabs of the pretraining workspace, against the core's results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QLabel, QPushButton, QWidget  # noqa: E402

from explorer.core.gpt.lens import compute_logit_lens, compute_token_losses  # noqa: E402
from explorer.core.numbers import fmt_number, fmt_percent  # noqa: E402
from explorer.core.workspaces.pretrain import PretrainWorkspace  # noqa: E402
from explorer.ui.common import theme as themes  # noqa: E402
from explorer.ui.common.labels import ElidedLabel  # noqa: E402
from explorer.ui.pretrain.attention import token_label  # noqa: E402
from explorer.ui.pretrain.lens import HOT, SURE, mix, shade, shown_token, text_on, top_text  # noqa: E402
from explorer.ui.pretrain.panel import PretrainPanel  # noqa: E402
from tests.trained import trained_run  # noqa: E402

WAIT_MS = 60000
EARLIER_TABS = ["Training", "Network health", "Attention maps", "Trace one step"]


def _panel(qtbot, workspace=None) -> PretrainPanel:
    panel = PretrainPanel(workspace=workspace)
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    return panel


@pytest.fixture
def trained(qtbot):
    """A panel whose workspace holds a run trained for a few steps, with its checkpoint in its folder."""
    workspace = PretrainWorkspace()
    run = trained_run(workspace)
    panel = _panel(qtbot, workspace)
    yield panel, run
    panel.shutdown()


def test_the_tabs_come_after_the_others_with_their_names(trained):
    panel, _run = trained
    titles = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    assert titles[:4] == EARLIER_TABS and titles[-2:] == ["Logit lens", "Per-token loss"]
    names = ((QWidget, "logitLensView"), (QWidget, "logitLensPrompt"), (QPushButton, "logitLensRun"),
             (QLabel, "logitLensReadout"), (QWidget, "tokenLossView"), (QPushButton, "tokenLossRun"),
             (QLabel, "tokenLossReadout"))
    for kind, name in names:
        assert panel.findChild(kind, name) is not None, name


def test_the_lens_table_shows_the_cores_predictions(trained, qtbot):
    panel, run = trained
    tab = panel.lens_tab
    panel.tabs.setCurrentWidget(tab)
    tab.prompt.setText("the cat sat")
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        qtbot.mouseClick(panel.findChild(QPushButton, "logitLensRun"), Qt.LeftButton)
    core = compute_logit_lens(run.checkpoint, "the cat sat", top_k=5)
    n, T = core.n_layers, len(core.ids)
    model = tab.table.model()
    assert (model.rowCount(), model.columnCount()) == (n, T) == (2, 11)
    assert model.headerData(0, Qt.Vertical) == "block 1 (output)"
    assert model.headerData(n - 1, Qt.Vertical) == "embedding"
    assert model.headerData(4, Qt.Horizontal) == "4\nc"
    theme = themes.get_theme()
    for layer in range(n):
        for t in range(T):
            top, p = int(core.top_ids[layer, t, 0]), float(core.top_probs[layer, t, 0])
            cell = tab.cell(layer, t)
            assert cell["text"] == f"{token_label(core.names[top])}\n{fmt_percent(p)}"
            assert cell["background"] == shade(theme["panel"], SURE["light"], p)
            assert abs(QColor(cell["background"]).blue() - int(mix("#ffffff", SURE["light"], p)[5:], 16)) <= 2
            assert cell["bold"] == (t + 1 < T and top == core.ids[t + 1])
    assert "Run 1 at step 3: 11 tokens" in tab.status.text()

    # The pointer over a cell reads out its top-k (a real mouse move over the table).
    row, column = 0, 4
    centre = tab.table.visualRect(model.index(row, column)).center()
    QTest.mouseMove(tab.table.viewport(), centre)
    qtbot.waitUntil(lambda: "position 4" in tab.readout.text(), timeout=5000)
    tokens = [core.names[int(i)] for i in core.top_ids[n - 1, column]]
    assert top_text(tokens, core.top_probs[n - 1, column]) in tab.readout.text()
    assert "block 1 (output) · position 4, after ‘c’" in tab.readout.text()
    assert "goes on with ‘a’" in tab.readout.text()


def test_a_long_prompt_is_clipped_and_says_so(trained, qtbot):
    panel, _run = trained
    tab = panel.lens_tab
    tab.prompt.setText("x" * 40)
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        tab.show_lens()
    assert tab.table.model().columnCount() == 16 and tab.result.clipped == 24
    assert "the first 24 are left out" in tab.status.text()


def test_the_loss_view_colours_the_cores_losses_and_reads_out_the_pointers_token(trained, qtbot):
    panel, run = trained
    tab = panel.token_loss_tab
    panel.tabs.setCurrentWidget(tab)
    tab.length.setValue(64)
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        qtbot.mouseClick(panel.findChild(QPushButton, "tokenLossRun"), Qt.LeftButton)
    core = compute_token_losses(run.checkpoint, n_tokens=64)
    assert np.allclose(tab.result.losses, core.losses) and tab.result.ids == core.ids
    view = tab.view
    assert view.tokens == [shown_token(t) for t in core.tokens] and len(view.tokens) == 64
    assert view.colours[0] is None  # nothing predicts the first token
    top = np.log(core.vocab_size)
    for i in (1, 10, 63):
        expected = shade(themes.get_theme()["panel"], "#dc2626", core.loss_of_token(i) / top)
        assert view.colours[i] == expected
    assert view.marks == {0, 16, 32, 48}  # windows of the context length (16)
    assert tab.progress.value() == 63 and f"mean loss {fmt_number(core.mean)} nats" in tab.status.text()

    QTest.mouseMove(view, view.rects[10].center().toPoint())
    qtbot.waitUntil(lambda: tab.readout.text().startswith("token 10 "), timeout=5000)
    readout = tab.readout.text()
    assert f"loss {fmt_number(core.loss_of_token(10))} nats" in readout
    tokens = [core.names[int(i)] for i in core.top_ids[9]]
    assert top_text(tokens, core.top_probs[9]) in readout
    # the pointer finds every token (lines, then a bisection) and nothing past the text
    rects = view.rects
    assert all(view.token_at(rect.center()) == i for i, rect in enumerate(rects))
    assert all(view.token_at(rect.topLeft() + QPointF(0.2, 0.2)) == i for i, rect in enumerate(rects))
    assert view.token_at(rects[-1].bottomRight() + QPointF(50, 50)) == -1
    assert view.token_at(QPointF(view.width() - 2, rects[0].center().y())) == -1  # right of a short line
    assert len({round(r.top()) for r in rects}) > 1  # the passage took several lines


def test_cancel_leaves_nothing_half_drawn(trained, qtbot):
    panel, _run = trained
    tab = panel.token_loss_tab
    tab.length.setValue(tab.length.maximum())
    tab.score()
    assert tab.is_busy() and tab.cancel_button.isEnabled()
    tab.cancel()
    assert not tab.is_busy() and tab.result is None and tab.status.text() == "Cancelled."
    assert tab.button.isEnabled() and not tab.cancel_button.isEnabled()


def test_without_a_run_or_its_checkpoint_each_tab_says_so(qtbot):
    panel = _panel(qtbot)
    try:
        panel.lens_tab.show_lens()
        panel.token_loss_tab.score()
        assert panel.lens_tab.status.text().startswith("No trained run yet")
        assert panel.token_loss_tab.status.text().startswith("No trained run yet")
        assert panel.lens_tab.result is None and panel.token_loss_tab.result is None
        assert not panel.lens_tab.is_busy() and not panel.token_loss_tab.is_busy()

        run = trained_run(panel.workspace)
        panel.history.select_run(run.run_id)
        Path(run.checkpoint).write_bytes(b"\x80\x04 not a checkpoint")  # a corrupt (pickle-like) file
        panel.lens_tab.show_lens()
        panel.token_loss_tab.score()
        for tab in (panel.lens_tab, panel.token_loss_tab):
            qtbot.waitUntil(lambda tab=tab: not tab.is_busy(), timeout=WAIT_MS)
            assert tab.status.text().startswith("Could not") and "pickle" in tab.status.text()
            assert "\n" not in tab.status.text() and tab.result is None
        Path(run.checkpoint).unlink()
        panel.lens_tab.show_lens()
        panel.token_loss_tab.score()
        for tab in (panel.lens_tab, panel.token_loss_tab):
            assert "Run 1's checkpoint is missing (checkpoint.safetensors" in tab.status.text()
            assert tab.result is None and not tab.is_busy()
    finally:
        panel.shutdown()


def test_a_switch_of_theme_recolours_the_cells_readably(trained, qtbot):
    panel, _run = trained
    tab = panel.lens_tab
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        tab.show_lens()
    dark = themes.get_theme("dark")
    panel.set_theme(dark)
    cell = tab.cell(0, 0)
    assert cell["background"] == shade(dark["panel"], SURE["dark"], float(tab.result.top_probs[0, 0, 0]))
    assert cell["foreground"] == text_on(cell["background"], dark)
    for theme in (dark, themes.get_theme("light")):  # every cell and token reads, in both themes
        for high in (SURE[theme["name"]], HOT[theme["name"]]):
            for share in np.linspace(0, 1, 21):
                colour = mix(theme["panel"], high, share)
                assert themes.contrast_ratio(text_on(colour, theme), colour) >= 4.5, (colour, theme["name"])


def test_corpus_text_that_looks_like_html_stays_text(qtbot, tmp_path):
    """Tokens are painted as plain text; a status or readout whose full text is in its tooltip escapes it."""
    label = ElidedLabel("", lines=1)
    qtbot.addWidget(label)
    label.resize(80, 30)
    label.setText("<img src='/etc/hostname'> token " * 5)
    assert label.is_elided() and label.toolTip().startswith("<qt>&lt;img src=&#x27;/etc/hostname&#x27;&gt;")
    corpus = tmp_path / "html.txt"
    corpus.write_text("<b>bold</b> <img src='x.png'> &amp; text\n" * 60, encoding="utf-8")
    workspace = PretrainWorkspace()
    run = trained_run(workspace, corpus_path=str(corpus))
    panel = _panel(qtbot, workspace)
    try:
        tab = panel.token_loss_tab
        tab.length.setValue(40)
        with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
            tab.score()
        assert "validation split of the corpus html.txt" in tab.status.text()
        assert "<" in tab.view.tokens and tab.readout.textFormat() == Qt.PlainText
        assert run.checkpoint
    finally:
        panel.shutdown()
