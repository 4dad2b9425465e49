"""The one table of the app's actions and keys: menus, button tooltips and the F1 help are built from it.

Each `ActionSpec` names an action once: its id, the workspace it belongs to ("app" for the window's own
menus), its text, its key, a tooltip that explains the concept, and the menu it goes in. Panels get their
QActions with `build(owner, {"network.train": handler, ...})`; a button that triggers an action shows
the action's tooltip and key with `describe_button`; `shortcuts_html()` is the F1 dialog.

No key means two things. The player keys (Space, Right, Left, Home, End) are one set of entries of the
pseudo-workspace "player": every workspace with a player binds them to its own player, scoped to its
panel (a panel's actions fire only while the focus is inside it), so the same key always means the same
thing. Entries of "graph" are keys the graph canvas handles itself (GraphView.keyPressEvent): they have
no QAction and appear in the F1 help only. The Examples menu lists the example files, not actions.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractButton, QWidget

WORKSPACE_MENU = "workspace"  # the menu named after the workspace that binds the action


@dataclass(frozen=True)
class ActionSpec:
    """One action: what it is called, which key triggers it, what it means and where it is listed."""

    id: str  # "<workspace>.<name>": the key of `build`'s handler mapping
    workspace: str  # "app", "expression", "network", "pretrain", "player" (every player) or "graph"
    text: str  # menu text (an & marks the mnemonic)
    shortcut: str = ""  # portable QKeySequence text ("Ctrl+T"); "" for none
    tooltip: str = ""  # what it does, explaining the concept
    menu: str | None = WORKSPACE_MENU  # "File", "View", "Help", WORKSPACE_MENU, or None (no menu entry)
    also: tuple[str, ...] = ()  # further keys that do the same (listed in the help, bound too)

    def keys(self) -> tuple[str, ...]:
        """Every key sequence of this action, portable text."""
        return tuple(k for k in (self.shortcut, *self.also) if k)


def _a(*args, **kwargs) -> ActionSpec:
    return ActionSpec(*args, **kwargs)


ACTIONS: tuple[ActionSpec, ...] = (
    # -- the window's own menus
    _a("app.open_session", "app", "&Open session…", "Ctrl+O",
       "Open a saved session: every workspace's program, network and runs as they were", "File"),
    _a("app.save_session", "app", "&Save session…", "Ctrl+S",
       "Save every workspace's state to a JSON file to come back to it later", "File"),
    _a("app.export_png", "app", "Export graph as &PNG…", "Ctrl+E",
       "Write the graph on screen to a PNG picture", "File"),
    _a("app.export_svg", "app", "Export graph as S&VG…", "Ctrl+Shift+E",
       "Write the graph on screen to an SVG drawing (scales without blur)", "File"),
    _a("app.export_run", "app", "Export &run…", "",
       "Copy the selected pretraining run's checkpoint and metrics CSV to a folder you pick", "File"),
    _a("app.export_script", "app", "Export as Python scrip&t…", "",
       "Write what this workspace built as a plain PyTorch script that prints the same numbers", "File"),
    _a("app.export_notebook", "app", "Export as &notebook…", "",
       "Write what this workspace built as a Jupyter notebook, each step explained, same numbers", "File"),
    _a("app.quit", "app", "&Quit", "Ctrl+Q", "Close the window: the session is saved for next time", "File"),
    _a("app.fit", "app", "&Fit graph", "Ctrl+0", "Zoom the graph so that all of it fits the view", "View"),
    _a("app.zoom_in", "app", "Zoom &in", "Ctrl++", "Zoom into the graph", "View"),
    _a("app.zoom_out", "app", "Zoom &out", "Ctrl+-", "Zoom out of the graph", "View"),
    _a("app.memory_overlay", "app", "&Memory overlay", "Ctrl+M",
       "What autograd keeps for backward: each op's saved tensors and their bytes on its card, the total "
       "beside the weights and their grads, and the memory freed node by node as backward runs", "View"),
    _a("app.find_node", "app", "&Find node…", "Ctrl+F",
       "Find a node of the graph by its name (or op, or module path): Enter for the next match", "View"),
    _a("app.theme_light", "app", "&Light theme", "", "Dark text on a light background", "View"),
    _a("app.theme_dark", "app", "&Dark theme", "", "Light text on a dark background", "View"),
    _a("app.workspace_expression", "app", "Expression workspace", "Ctrl+1",
       "Type a small program and watch autograd compute its gradients node by node", "View"),
    _a("app.workspace_network", "app", "Network workspace", "Ctrl+2",
       "Build a small network and step through one training iteration, then train it on toy data", "View"),
    _a("app.workspace_pretrain", "app", "Pretraining workspace", "Ctrl+3",
       "Configure and train a tiny GPT, compare runs, look at its attention", "View"),
    _a("app.learn", "app", "&Learn: guided lessons", "F2",
       "Show or hide the Learn panel: lessons that walk the seed chapter by chapter, with exercises the "
       "app checks", "Help"),
    _a("app.shortcuts", "app", "&Keyboard shortcuts", "F1", "Every key of the app, by workspace", "Help"),
    _a("app.about", "app", "&About", "", "What Autograd Explorer is", "Help"),
    # -- the player of a trace (expression, network iteration), scoped to the workspace on screen
    _a("player.step_forward", "player", "Step forward", "Right",
       "Show the next event: the forward pass op by op, then the backward pass in the engine's order"),
    _a("player.step_back", "player", "Step back", "Left", "Go back one event"),
    _a("player.play_pause", "player", "Play / pause", "Space",
       "Play the events one after the other, or pause"),
    _a("player.rewind", "player", "Rewind to step 0", "Home", "Back to the start: nothing computed yet"),
    _a("player.end", "player", "Jump to the end", "End",
       "Show every event: the whole forward and backward pass"),
    # -- keys of the graph canvas (handled by the view; listed in the help)
    _a("graph.walk", "graph", "Select the next / previous node", "Tab",
       "The inspector shows the selected node's value, gradient and chain rule", None, ("Shift+Tab",)),
    _a("graph.vertical", "graph", "Select the node above / below", "Up", "", None, ("Down",)),
    _a("graph.clear", "graph", "Clear the selection", "Escape",
       "The inspector follows the player again", None),
    _a("graph.expand", "graph", "Expand or collapse a module (or double-click)", "Return",
       "A module (a Linear, an attention block) is drawn as one card until expanded", None),
    _a("graph.fit_key", "graph", "Fit the graph to the window", "F", "", None),
    _a("graph.zoom_keys", "graph", "Zoom (or the wheel; drag to pan)", "+", "", None, ("-",)),
    # -- expression workspace
    _a("expression.run", "expression", "Run program", "Ctrl+Return",
       "Parse and trace the program now; it also runs by itself shortly after you stop typing"),
    _a("expression.descent_step", "expression", "Gradient descent step", "Ctrl+G",
       "Update every param: p ← p − lr · dL/dp, then run forward and backward again"),
    _a("expression.predict", "expression", "&Predict, then reveal", "Ctrl+Shift+P",
       "Before each backward step shows a gradient, type what you expect it to be; the app checks it "
       "within 1 % and keeps a score"),
    _a("expression.backward_again", "expression", "Backward again without zeroing", "",
       "PyTorch adds new gradients to .grad instead of replacing them: call backward() twice without "
       "zero_grad() and .grad doubles"),
    # -- network workspace
    _a("network.next_iteration", "network", "Next iteration", "N",
       "Run another iteration on the same batch: zero_grad, forward, loss, backward, step"),
    _a("network.skip_zero_grad", "network", "Skip zero_grad", "Z",
       "Leave optimizer.zero_grad() out of the next iteration: watch .grad accumulate"),
    _a("network.train", "network", "Train / pause", "Ctrl+T",
       "Train, pause or resume on the toy data; training runs on a worker thread"),
    _a("network.reset_training", "network", "Reset training", "Ctrl+R", "Stop and clear all toy-data runs"),
    # -- pretraining workspace
    _a("pretrain.train", "pretrain", "Train", "Ctrl+Shift+Return",
       "Start a new run with these hyperparameters"),
    _a("pretrain.pause", "pretrain", "Pause / resume", "Ctrl+P",
       "Hold the run between two steps; press again to resume"),
    _a("pretrain.stop", "pretrain", "Stop", "Ctrl+.", "Stop after the current step; the checkpoint is kept"),
    _a("pretrain.retrain", "pretrain", "Retrain", "Ctrl+Shift+R",
       "While a run is going: stop it (its checkpoint is kept) and start a new run from scratch with the "
       "form's (tweaked) settings, in one click; earlier runs stay on the plot for comparison"),
    _a("pretrain.trace_step", "pretrain", "Trace one step", "Ctrl+Shift+T",
       "Record one training step of the selected (or latest) run's model (forward, loss, backward) and "
       "show it as a computational graph", None),
    _a("pretrain.delete_run", "pretrain", "Delete run", "Delete",
       "Remove the selected run and its curves", None),
)

SPECS: dict[str, ActionSpec] = {spec.id: spec for spec in ACTIONS}

WORKSPACE_TITLES = {"app": "Everywhere", "player": "Player (Expression, Network iteration)",
                    "graph": "Graph canvas (when it has the focus)", "expression": "Expression workspace",
                    "network": "Network workspace", "pretrain": "Pretraining workspace"}

ACTION_ID = "actionId"  # the QAction property holding its spec's id


def spec(action_id: str) -> ActionSpec:
    """The entry of `action_id` (KeyError names it when there is none)."""
    try:
        return SPECS[action_id]
    except KeyError:
        raise KeyError(f"no action {action_id!r} in explorer.ui.common.actions.ACTIONS") from None


def key_text(action_id: str) -> str:
    """The action's keys as the user reads them ("Ctrl+T", "Tab / Shift+Tab"); "" when it has none."""
    return " / ".join(QKeySequence(k).toString(QKeySequence.NativeText) for k in spec(action_id).keys())


def tooltip(action_id: str) -> str:
    """The action's tooltip followed by its key in brackets."""
    s, keys = spec(action_id), key_text(action_id)
    return f"{s.tooltip} ({keys})" if keys else s.tooltip


def build(owner: QWidget, handlers: Mapping[str, Callable[[], object]]) -> list[QAction]:
    """One QAction per id of `handlers`, in that order, each calling its handler.

    Window actions ("app") are window-wide; a workspace's or player's action is added to `owner` and
    fires only while the focus is inside it (keys a focused input uses itself never reach it:
    graph.player.install_input_key_guard).
    """
    out = []
    for action_id, handler in handlers.items():
        s = spec(action_id)
        if s.workspace == "graph":
            raise ValueError(f"{action_id} is a key of the graph canvas, not an action")
        action = QAction(s.text, owner)
        action.setProperty(ACTION_ID, s.id)
        if s.keys():
            action.setShortcuts([QKeySequence(k) for k in s.keys()])
        action.setToolTip(tooltip(action_id))
        action.setStatusTip(s.tooltip)
        action.triggered.connect(lambda _=False, h=handler: h())
        if s.workspace != "app":  # (the window's own actions are made before the first paint: no Qt there)
            from PySide6.QtCore import Qt

            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            owner.addAction(action)
        out.append(action)
    return out


def describe_button(button: QAbstractButton, action_id: str, with_shortcut: bool = False) -> None:
    """Give `button` the action's tooltip (with its key); its shortcut too when `with_shortcut`.

    A button that stands beside a menu action of the same key must not hold the key itself: Qt calls
    two holders of one key ambiguous and triggers neither.
    """
    button.setToolTip(tooltip(action_id))
    if with_shortcut:
        button.setShortcut(QKeySequence(spec(action_id).shortcut))


def shortcuts_html() -> str:
    """The F1 help: every key of the table, grouped by workspace."""
    rows = []
    for workspace, title in WORKSPACE_TITLES.items():
        entries = [s for s in ACTIONS if s.workspace == workspace and s.keys()]
        if not entries:
            continue
        rows.append(f"<tr><td colspan=2><i>{html.escape(title)}</i></td></tr>")
        for s in entries:
            keys = " / ".join(f"<b>{html.escape(QKeySequence(k).toString(QKeySequence.NativeText))}</b>"
                              for k in s.keys())
            what = html.escape(s.text.replace("&", ""))
            if s.tooltip:
                what += f" <span style='color:gray'>— {html.escape(s.tooltip)}</span>"
            rows.append(f"<tr><td>{keys}</td><td>{what}</td></tr>")
    return ("<h3>Keyboard shortcuts</h3><table cellspacing=4>" + "".join(rows) + "</table>"
            "<p>While you type in a field (the program, a number, a list) the keys belong to that field: a "
            "space is a space. Click the graph to give the keys back to the player.</p>")
