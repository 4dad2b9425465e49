"""The one table of actions and keys (explorer.ui.common.actions): no key means two things, and the
menus, the buttons and the F1 help all come from it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from explorer.ui import main_window as mw
from explorer.ui.common import actions

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


def _normal(key: str) -> str:
    return QKeySequence(key).toString(QKeySequence.PortableText)


def test_no_key_sequence_appears_twice_in_the_table():
    # The player keys too: they are one set of "player" entries that every player binds (scoped to
    # its own panel), never one entry per workspace.
    seen: dict[str, str] = {}
    for spec in actions.ACTIONS:
        for key in spec.keys():
            normal = _normal(key)
            assert normal, f"{spec.id}: {key!r} is not a key sequence Qt can read"
            assert normal not in seen, f"{key} means both {seen[normal]} and {spec.id}"
            seen[normal] = spec.id


def test_the_keys_that_stay_are_kept():
    expected = {"expression.run": "Ctrl+Return", "expression.descent_step": "Ctrl+G",
                "player.play_pause": "Space", "player.step_forward": "Right", "player.step_back": "Left",
                "player.rewind": "Home", "player.end": "End", "network.next_iteration": "N",
                "network.skip_zero_grad": "Z", "app.workspace_expression": "Ctrl+1",
                "app.workspace_network": "Ctrl+2", "app.workspace_pretrain": "Ctrl+3", "app.shortcuts": "F1"}
    assert {k: actions.spec(k).shortcut for k in expected} == expected
    # the two that meant different things in Network and Pretraining now differ
    assert actions.spec("network.train").shortcut != actions.spec("pretrain.trace_step").shortcut
    assert actions.spec("network.reset_training").shortcut != actions.spec("pretrain.retrain").shortcut


def test_every_entry_is_complete_and_ids_are_unique():
    assert len(actions.SPECS) == len(actions.ACTIONS)
    for spec in actions.ACTIONS:
        assert spec.id.startswith(f"{spec.workspace}.")
        assert spec.workspace in actions.WORKSPACE_TITLES
        assert spec.text
        assert spec.workspace != "app" or spec.menu in ("File", "View", "Help")
        assert spec.tooltip or spec.workspace == "graph", f"{spec.id} explains nothing"
    with pytest.raises(KeyError, match="no action"):
        actions.spec("network.fly")


def test_build_gives_actions_with_the_table_s_text_key_and_handler(qtbot):
    owner = QWidget()
    qtbot.addWidget(owner)
    calls = []
    built = actions.build(owner, {"network.train": lambda: calls.append("train"),
                                  "player.rewind": lambda: calls.append("rewind")})
    assert [a.property(actions.ACTION_ID) for a in built] == ["network.train", "player.rewind"]
    assert built[0].text() == "Train / pause" and built[0].shortcut().toString() == "Ctrl+T"
    assert "(Ctrl+T)" in built[0].toolTip()
    assert set(owner.actions()) == set(built)  # scoped to the panel that owns them
    for action in built:
        action.trigger()
    assert calls == ["train", "rewind"]
    with pytest.raises(ValueError, match="graph canvas"):
        actions.build(owner, {"graph.walk": lambda: None})


def test_every_menu_action_of_the_window_comes_from_the_table(qtbot, tmp_path):
    window = mw.MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.show()
    for key in ("expression", "network", "pretrain"):
        assert window.panel(key) is not None, window.errors.get(key)
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    titles = [m.title() for m in menus]
    assert {"Expression", "Network", "Pretraining"} <= set(titles)
    checked = 0
    for menu in menus:
        if menu.objectName() == "examplesMenu":  # the example files, listed by name
            continue
        for action in menu.actions():
            if action.isSeparator():
                continue
            action_id = action.property(actions.ACTION_ID)
            assert action_id in actions.SPECS, f"{menu.title()} > {action.text()} is not in the table"
            spec = actions.spec(action_id)
            assert action.text() == spec.text
            assert [s.toString() for s in action.shortcuts()] == [_normal(k) for k in spec.keys()]
            checked += 1
    assert checked >= 25
    # and no key is held by two actions that can fire at once (Qt would call it ambiguous and trigger
    # neither): a window-wide key by no other action, a panel's key by no other action of that panel
    holders: dict[str, list[QAction]] = {}
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            holders.setdefault(seq.toString(), []).append(action)
    for key, held in holders.items():
        for i, a in enumerate(held):
            for b in held[i + 1:]:
                window_wide = Qt.WindowShortcut in (a.shortcutContext(), b.shortcutContext())
                assert not window_wide and a.parent() is not b.parent(), f"{key}: {a.text()} / {b.text()}"
    window.shutdown_panels()


def test_buttons_show_the_table_s_tooltip_and_key(qtbot):
    from explorer.ui.network.panel import NetworkPanel

    panel = NetworkPanel()
    qtbot.addWidget(panel)
    assert panel.train.reset_button.toolTip() == actions.tooltip("network.reset_training")
    assert panel.iteration.next_button.toolTip() == actions.tooltip("network.next_iteration")
    panel.shutdown()


def test_the_f1_help_lists_every_key_of_the_table():
    page = actions.shortcuts_html()
    for spec in actions.ACTIONS:
        for key in spec.keys():
            text = QKeySequence(key).toString(QKeySequence.NativeText)
            assert f"<b>{text}</b>" in page or f"<b>{text.replace('&', '&amp;')}</b>" in page, spec.id
    for title in actions.WORKSPACE_TITLES.values():
        if title:
            assert title in page
