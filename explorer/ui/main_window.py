"""The main window: workspaces as lazily created tabs, menus, sessions, themes and saved window state.

Panels follow the protocol of docs/architecture.md: optional `menu_actions`, `state`/`restore_state`,
`prepare_screenshot`, `shutdown`. A panel that fails to load shows its error in its tab.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
from pathlib import Path

# Only what the window needs before its first paint is imported here; the rest (dialogs, pictures, the
# memory overlay) where it is used: each Qt class a module names costs its enums' creation at import.
# Nor is PySide's `Qt` namespace named before the first paint (its ~90 enum types cost 50-100 ms, see
# common/placeholder.py): methods that run later import it where they use it.
from PySide6.QtCore import QByteArray, QSettings, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.common.placeholder import centred_line
from explorer.ui.learn.panel import LEARN_DEFAULT_W, POSITION_KEY, LearnPanel

# key, tab title, module, class
WORKSPACES = [
    ("expression", "Expression", "explorer.ui.expression.panel", "ExpressionPanel"),
    ("network", "Network", "explorer.ui.network.panel", "NetworkPanel"),
    ("pretrain", "Pretraining", "explorer.ui.pretrain.panel", "PretrainPanel"),
]
LESSONS_OFFERED = "learn/offered"  # the settings flag: the Learn panel offered itself on a first start
# The Qt-free modules the workspaces build on (torch, numpy, networkx, pydantic among them): imported on a
# Worker after the first paint, so that the window answers while they load (seconds on a busy machine);
# the session is applied and the panel built on the GUI thread once they are in.
CORE_MODULES = {
    "expression": ("explorer.core.workspaces.session", "explorer.core.autograd.explain",
                   "explorer.core.autograd.predict", "explorer.core.lang.ops", "explorer.core.graph.display"),
    # torch._dynamo: torch's first optimizer imports it (seconds), and the network panel makes one
    "network": ("explorer.core.workspaces.session", "explorer.core.mlp.network", "explorer.core.mlp.toydata",
                "explorer.core.graph.display", "explorer.core.autograd.explain", "torch._dynamo"),
    "pretrain": ("explorer.core.workspaces.session", "explorer.core.gpt.budget", "explorer.core.gpt.model",
                 "explorer.core.gpt.train", "explorer.core.gpt.runs"),
}
# The workspaces whose panel is built, and takes input, before torch is in: their panel modules and models
# import torch where they compute (tests/ui/test_torch_free_panels.py). The window builds such a panel
# right after its first paint and imports CORE_MODULES meanwhile; the panel's graph says "Loading
# PyTorch…" until its first result (the network panel: its two tabs; the pretraining panel: its training
# and inspection tabs, beside the form; both built once torch is in). Every workspace is LIGHT now.
LIGHT = frozenset({"expression", "network", "pretrain"})
IMPORT_WAIT_S = 10.0  # see MainWindow.import_wait_s
BACKGROUND_POLL_MS = 300  # the other workspaces' core modules load once the visible panel shows a result
SPLITTERS = "splitters"  # settings group: each workspace splitter's state, by its objectName
SPLITTERS_AUTO = "splittersAuto"  # ... and whether a panel set those widths itself (property "autoWidths")
# The window's last look: at each close the visible workspace is grabbed to this picture beside the
# settings file; the next start shows it (marked as loading) in that workspace's tab until its panel is
# built, so a returning user sees the graph as it was (values included) while torch loads.
PREVIEW_NAME = "last-workspace.png"
PREVIEW_KEY = "preview"  # settings group: which workspace and theme the picture shows
UNPAINTED_FALLBACK_MS = 3000  # build the visible panel this long after show even without a paint

ABOUT_HTML = """
<h3>Autograd Explorer</h3>
<p>Watch PyTorch's autograd work node by node: type an expression, step through the forward pass and
then the backward pass in the order the engine really ran it, with the chain rule in numbers.</p>
<p>The gradients on screen are torch's own, recorded from its <code>grad_fn</code> hooks.</p>
"""


def default_settings() -> QSettings:
    """The app's settings store (an ini file in the user's config folder)."""
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "AutogradExplorer", "autograd-explorer")


class ExamplesMenu(QMenu):
    """The Examples menu (objectName `examplesMenu`): one action per example file, listed on first use.

    Listing the files (importlib.resources, a few reads) waits until the menu opens or its actions are
    asked for, so it costs nothing before the window's first paint.
    """

    def __init__(self, title: str, window: MainWindow):
        super().__init__(title, window)
        self.setObjectName("examplesMenu")
        self._window = window
        self._listed = False
        self.aboutToShow.connect(self.list_examples)

    def list_examples(self) -> None:
        """Add an action per example file (once)."""
        if self._listed:
            return
        self._listed = True
        from explorer.core.lang.examples import list_examples

        for name, title in list_examples():  # the example files, not actions: no table entry each
            action = QAction(title, self._window)
            action.triggered.connect(lambda _=False, n=name: self._window.load_example(n))
            action.setData(name)
            action.setToolTip(f"assets/examples/{name}.expr")
            self.addAction(action)

    def actions(self) -> list[QAction]:
        """The menu's actions, the examples listed first if they were not yet."""
        self.list_examples()
        return super().actions()


class MainWindow(QMainWindow):
    """Tabs Expression / Network / Pretraining, menus File, Examples, View, Help and per workspace."""

    sig_panel_ready = Signal(str)
    """A workspace's panel was created (or failed and shows its error): its key."""
    sig_first_painted = Signal()
    """The window was painted for the first time; the visible workspace's panel is built right after."""
    sig_session_opened = Signal(bool)
    """A session file was opened (True) or refused with a message in the status bar (False)."""
    sig_preview_shown = Signal(str)
    """The last look of a restored workspace is on screen until its panel is built: its key."""

    def __init__(self, settings: QSettings | None = None, persist: bool = True, parent=None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Autograd Explorer")
        self.settings = settings if settings is not None else default_settings()
        self.persist = persist
        # How long the close waits for a core import in flight on the loader (the other workspaces' are
        # imported in the background): Python's normal exit while a thread is inside torch's import can
        # abort the process. The app ends with os._exit and sets 0.
        self.import_wait_s = IMPORT_WAIT_S
        self.panels: dict[str, QWidget] = {}
        self.errors: dict[str, str] = {}
        self._slots: dict[str, QWidget] = {}
        self._workspaces = None  # explorer.core.workspaces.session.Workspaces, made on first use
        self._export_worker = None  # writes exported scripts and notebooks (File > Export as ...)
        self._saved_session: str | None = None  # the last launch's session, applied once its models load
        self._session_reader = None  # the worker of File > Open (made on first use)
        self._reading: str | Path = ""
        self._workspace_menus: dict[str, object] = {}
        self._painted = False  # no panel is built before the first paint (a panel may import torch)
        self.first_painted_at: float | None = None  # time.time() when the first frame was on screen
        self.first_painted_cpu: float | None = None  # the process's CPU seconds by then (the start-up bench)
        self._core_loader = None  # the Worker importing CORE_MODULES (made after the first paint)
        self._core_loaded: set[str] = set()  # the workspaces whose CORE_MODULES are imported
        self._core_loading = ""  # the workspace whose CORE_MODULES the loader imports (or imported last)
        self._restored_early: set[str] = set()  # LIGHT workspaces given their saved part before torch
        self._building: dict[str, QWidget] = {}  # panels being built in slices (the user's first visit)
        self._slicing = False  # panel() builds in slices (only _load_current_panel asks for that)
        self._shut_down = False  # shutdown_panels ran (the window closed): no panel is built on its own
        self._recolour = themes.DeferredRecolour(self, self._recolour_panel)  # hidden panels: later turns
        self._preview_wanted: str | None = None  # the workspace whose last look is shown at start
        self._preview_reader = None  # the Worker reading that picture
        self.theme_name = str(self.settings.value("theme", "light")) if persist else "light"
        self.tabs = QTabWidget()
        self.tabs.setObjectName("workspaceTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)  # no line across the tab row (a stray light line in dark)
        for key, title, _mod, _cls in WORKSPACES:
            slot = QWidget()
            slot.setObjectName(f"{key}Slot")
            layout = QVBoxLayout(slot)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.addWidget(centred_line(f"Loading the {title} workspace…"))
            self._slots[key] = slot
            self.tabs.addTab(slot, title)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.setCentralWidget(self.tabs)
        # The Learn dock (F2); its contents are built when first shown. A saved window state places it
        # (restoreState finds it by objectName); else it docks at the first paint (dock_learn), hidden
        # until then: placing it names Qt's dock areas, which the first frame does without.
        self.learn = LearnPanel(self)
        self._learn_docked = False
        self.learn.hide()
        self._build_menus()
        self.statusBar().showMessage("Ready")
        self.resize(1440, 860)
        if persist:
            self._restore_window()
            if not self.settings.value(LESSONS_OFFERED, False, type=bool):  # first start: offer the lessons
                self.settings.setValue(LESSONS_OFFERED, True)
                self.sig_first_painted.connect(self.learn.show)  # its contents build after that
        app = QApplication.instance()
        if app is not None:  # threads must stop when the app quits, not only when the window closes
            app.aboutToQuit.connect(self.shutdown_panels)

    # -- public API ------------------------------------------------------------------------

    def current_key(self) -> str:
        """Key of the workspace in the visible tab."""
        return WORKSPACES[max(0, self.tabs.currentIndex())][0]

    def show_workspace(self, key: str) -> None:
        """Bring a workspace's tab to the front (its panel is created soon after)."""
        keys = [w[0] for w in WORKSPACES]
        if key not in keys:
            raise KeyError(f"unknown workspace {key!r}; choose from {', '.join(keys)}")
        self.tabs.setCurrentIndex(keys.index(key))

    def panel(self, key: str, create: bool = True) -> QWidget | None:
        """The panel of workspace `key`, created now if needed (None when it failed to load)."""
        building = self._building.get(key)
        if building is not None and create:  # being built in slices (the user's visit): complete it now
            try:
                building.finish_building()  # its sig_done installs it
            except Exception as exc:
                self._slices_failed(key, exc)
        if key in self.panels or not create:
            self._recolour.flush(key)
            return self.panels.get(key)
        if key in self.errors:
            return None
        spec = next(w for w in WORKSPACES if w[0] == key)
        if key in self._restored_early and self._saved_session is not None:
            pass  # its part is applied; the rest of the saved session once the core modules are in
        else:
            self._apply_saved_session()
        try:
            module = importlib.import_module(spec[2])
            sliced = self._slicing and hasattr(getattr(module, spec[3]), "finish_building")
            kwargs = {"sliced": True, "parent": self._slots[key]} if sliced else {}
            panel = getattr(module, spec[3])(workspace=self.workspaces.get(key), **kwargs)
        except Exception as exc:  # a broken workspace must not take the others down
            self._show_failure(key, spec[1], exc)
            self.sig_panel_ready.emit(key)
            return None
        if sliced:  # one piece per event-loop turn (no freeze); installed when whole
            self._building[key] = panel
            panel.building.sig_done.connect(lambda: self._slices_done(key, spec[1]))
            panel.building.sig_failed.connect(lambda exc: self._slices_failed(key, exc))
            return None
        self._install(key, spec[1], panel)
        self.sig_panel_ready.emit(key)
        return panel

    def _slices_done(self, key: str, title: str) -> None:
        panel = self._building.pop(key, None)
        if panel is not None:
            self._install(key, title, panel)
            self.sig_panel_ready.emit(key)
            self._load_next_core()

    def _slices_failed(self, key: str, exc: BaseException) -> None:
        panel = self._building.pop(key, None)
        if panel is not None:
            panel.deleteLater()
            self._show_failure(key, next(w[1] for w in WORKSPACES if w[0] == key), exc)
            self.sig_panel_ready.emit(key)

    def is_painted(self) -> bool:
        """Whether the window was painted (panels that import torch wait for that)."""
        return self._painted

    def workspace_ready(self) -> bool:
        """Whether the visible workspace's panel is built (or shows why it could not be): work that is not
        needed before it (the Learn dock's lessons, which import torch) waits for `sig_panel_ready`."""
        key = self.current_key()
        return key in self.panels or key in self.errors

    def toggle_learn(self) -> None:
        """Show or hide the Learn panel (F2)."""
        self.dock_learn()
        self.learn.setVisible(self.learn.isHidden())
        if not self.learn.isHidden():
            self.learn.raise_()

    def dock_learn(self) -> None:
        """Put the Learn dock in its place beside the workspaces, unless a saved window state did (once;
        done at the first paint, or earlier when the dock is asked for)."""
        if self._learn_docked:
            return
        self._learn_docked = True
        from PySide6.QtCore import Qt

        self.learn.setAllowedAreas(Qt.LeftDockWidgetArea | Qt.RightDockWidgetArea)
        if self.dockWidgetArea(self.learn) == Qt.NoDockWidgetArea:  # no saved state placed it
            self.addDockWidget(Qt.RightDockWidgetArea, self.learn)
            self.resizeDocks([self.learn], [LEARN_DEFAULT_W], Qt.Horizontal)

    def ensure_current_panel(self) -> None:
        """Create the visible workspace's panel if it does not exist yet."""
        self.panel(self.current_key())

    @property
    def workspaces(self):
        """The workspace models of this window (what sessions save); created on first use."""
        if self._workspaces is None:
            from explorer.core.workspaces.session import Workspaces

            self._workspaces = Workspaces()
        return self._workspaces

    def session(self) -> dict:
        """The session as JSON-able data: every workspace's model and the current workspace."""
        if self._restored_early and self._saved_session is not None and not self._core_loaded:
            return self._session_while_loading()
        self._apply_saved_session()
        self.workspaces.current = self.current_key()
        return self.workspaces.to_json()

    def _session_while_loading(self) -> dict:
        """The session before the saved one was applied whole (torch still loading): the saved session with
        the parts of the workspaces restored early taken from their live models (validating the rest
        would import torch on this thread; it is validated at the next start)."""
        try:
            data = json.loads(str(self._saved_session))
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("workspaces"), dict):
            self.workspaces.current = self.current_key()
            return self.workspaces.to_json()
        for key in self._restored_early:
            if self.workspaces.created(key):
                data["workspaces"][key] = self.workspaces.get(key).to_json()
        data["current"] = self.current_key()
        return data

    def apply_session(self, data: dict | str | bytes) -> None:
        """Validate a whole session, then apply all of it (SessionError, and nothing changed, if bad)."""
        from explorer.core.workspaces.session import parse_session

        text = data if isinstance(data, str | bytes) else json.dumps(data)
        session = parse_session(text)
        self._saved_session = None  # a session applied now supersedes the last launch's, if still pending
        self.workspaces.apply(session)
        self.show_workspace(session.current)

    def save_session(self, path: str | Path) -> None:
        """Write the session to a JSON file (atomically)."""
        from explorer.core.workspaces.session import write_session

        self.workspaces.current = self.current_key()
        write_session(path, self.workspaces)

    def open_session(self, path: str | Path) -> bool:
        """Read, validate and apply a session file; a bad one is refused with one message, changes nothing.

        This reads on the calling thread (scripts, tests); File > Open reads in the background instead
        (`open_session_in_background`), so a big file never freezes the window.
        """
        from explorer.core.workspaces.session import SessionError, read_session

        try:
            session = read_session(path)
        except SessionError as exc:
            return self._session_opened(path, exc)
        return self._session_opened(path, session)

    def open_session_in_background(self, path: str | Path) -> None:
        """Read and validate a session file off the GUI thread, then apply it whole (sig_session_opened)."""
        from explorer.core.workspaces.session import SessionError, read_session
        from explorer.ui.common.worker import Worker

        def read(_job):
            try:
                return read_session(path)
            except SessionError as exc:
                return exc

        if self._session_reader is None:
            self._session_reader = Worker(self)
            self._session_reader.sig_done.connect(lambda result: self._session_opened(self._reading, result))
            self._session_reader.sig_failed.connect(
                lambda message: self._session_opened(self._reading, ValueError(message)))
        self._reading = path
        self.statusBar().showMessage(f"Opening the session {Path(path).name}…")
        self._session_reader.submit(read)

    def _session_opened(self, path, result) -> bool:
        """Apply a validated session, or report why it was refused (nothing changed then)."""
        ok = not isinstance(result, Exception)
        if ok:
            self._saved_session = None  # the last launch's session, if still pending, is superseded
            self.workspaces.apply(result)
            self.show_workspace(result.current)
            self.statusBar().showMessage(f"Opened the session {Path(path).name}", 5000)
        else:
            self._error(f"Could not open the session {Path(path).name}: {result}")
        self.sig_session_opened.emit(ok)
        return ok

    def export_graph(self, path: str | Path, fmt: str | None = None) -> bool:
        """Render the current workspace's graph to PNG or SVG; False (with a message) when there is none."""
        from explorer.ui.graph.render import render_scene_file
        from explorer.ui.graph.view import GraphView

        panel = self.panels.get(self.current_key())
        views = panel.findChildren(GraphView) if panel is not None else []
        views = [v for v in views if v.graph_scene.cards]
        if not views:
            self._error("This workspace shows no graph to export yet.")
            return False
        try:
            render_scene_file(views[0].graph_scene, path, fmt)
        except (OSError, ValueError) as exc:
            self._error(f"Could not export the graph: {exc}")
            return False
        self.statusBar().showMessage(f"Graph written to {path}", 5000)
        return True

    def export_run(self, folder: str | None = None) -> list[str]:
        """File > Export run…: the selected pretraining run's checkpoint and metrics CSV, to a folder."""
        self.show_workspace("pretrain")
        panel = self.panel("pretrain")
        return panel.export_run(folder=folder) if panel is not None else []

    def export_code(self, path: str | Path, to: str = "script") -> bool:
        """File > Export as Python script / notebook: the current workspace's model as runnable code.

        The code is generated here from the workspace model (quick: text from the model and the op table)
        and written on a background worker; the status bar says where it went, or why it could not.
        False (with a message) when the workspace cannot be exported as it stands.
        """
        from explorer.core.export import ExportError, export_notebook, export_script, notebook_text

        key = self.current_key()
        try:
            if to == "notebook":
                text = notebook_text(export_notebook(key, self.workspaces.get(key)))
            else:
                text = export_script(key, self.workspaces.get(key))
        except ExportError as exc:
            self._error(f"Could not export this workspace: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 -- a bug of ours still reaches the user as one line
            from explorer.ui.common.worker import one_line

            self._error(f"Could not export this workspace: {one_line(exc)}")
            return False
        what = "Notebook" if to == "notebook" else "Script"
        self._code_worker().submit(lambda job: str(_write_code(path, text)))
        self.statusBar().showMessage(f"Writing the {what.lower()} to {Path(path).name}…", 5000)
        return True

    def _code_worker(self):
        from explorer.ui.common.worker import Worker

        if self._export_worker is None:
            worker = self._export_worker = Worker(self)
            worker.sig_done.connect(lambda path: self.statusBar().showMessage(f"Exported to {path}", 8000))
            worker.sig_failed.connect(lambda message: self._error(f"Could not export: {message}"))
        return self._export_worker

    def set_theme(self, name: str, staged: bool = False) -> None:
        """Switch between the light and dark theme; `staged` (the View menu's path): one step per event-loop
        turn while the window keeps its old look, then one repaint (themes.DeferredRecolour)."""
        self.theme_name = name if name in themes.THEMES else "light"
        theme = themes.get_theme(self.theme_name)
        # the palette, the visible workspace, the Learn panel now (or staged); each hidden workspace later
        self._recolour.switch(list(self.panels), self.current_key(), staged=staged,
                              before=themes.theme_steps(QApplication.instance(), self.theme_name),
                              after=[lambda: self.learn.set_theme(theme)])
        for action in self._theme_actions.actions():
            action.setChecked(action.data() == self.theme_name)

    def _recolour_panel(self, key: str) -> None:
        panel, theme = self.panels.get(key), themes.get_theme(self.theme_name)
        if panel is None:
            return
        themes.style_labels(panel, theme)
        if hasattr(panel, "set_theme"):
            panel.set_theme(theme)
        else:
            from explorer.ui.graph.view import GraphView

            for view in panel.findChildren(GraphView):
                view.set_theme(theme)

    def load_example(self, name: str) -> None:
        """Open example `name` in the expression workspace."""
        self.show_workspace("expression")
        panel = self.panel("expression")
        if panel is None:
            return
        try:
            panel.load_example(name)
        except (KeyError, OSError) as exc:
            self._error(str(exc))

    def shutdown_panels(self) -> None:
        """Ask every panel to stop its workers."""
        self._shut_down = True
        if self._core_loader is not None and self._core_loader.is_busy() and self.import_wait_s > 0:
            self._core_loader.shutdown(int(1000 * self.import_wait_s))
        for key in list(self._building):  # half built in slices: whole (owned by the window), then stopped
            self.panel(key)
        for panel in self.panels.values():
            if hasattr(panel, "shutdown"):
                try:
                    panel.shutdown()
                except Exception:  # keep closing the others
                    traceback.print_exc()

    def save_splitters(self) -> None:
        """Remember how wide the user made (or folded) each workspace's columns (restored with the panel)."""
        for panel in self.panels.values():
            for split in panel.findChildren(QSplitter):
                if split.objectName():
                    self.settings.setValue(f"{SPLITTERS}/{split.objectName()}", split.saveState())
                    # widths a panel chose itself for the window's size (never dragged) are not the user's
                    self.settings.setValue(f"{SPLITTERS_AUTO}/{split.objectName()}",
                                           bool(split.property("autoWidths")))

    def _restore_splitters(self, panel: QWidget) -> None:
        for split in panel.findChildren(QSplitter):
            if split.property("stateRestored"):  # once: a part built later restores its own only
                continue
            split.setProperty("stateRestored", True)
            state = self.settings.value(f"{SPLITTERS}/{split.objectName()}") if split.objectName() else None
            if isinstance(state, QByteArray):
                split.restoreState(state)
                auto = self.settings.value(f"{SPLITTERS_AUTO}/{split.objectName()}", False)
                if str(auto).lower() not in ("true", "1"):
                    split.setProperty("restored", True)  # the user's widths: a panel leaves them as they are

    def preview_path(self) -> Path | None:
        """Where the window keeps its last look (beside its settings file); None without a settings file."""
        name = self.settings.fileName()
        return Path(name).parent / PREVIEW_NAME if name else None

    def save_preview(self) -> bool:
        """Grab the visible workspace's panel to the preview picture (done at close); False when there is
        no panel to grab (the last picture, of the same session, stays) or it could not be written (then
        no picture is shown at the next start: never an older one)."""
        from PySide6.QtCore import QBuffer, QIODevice

        from explorer.core import files

        key, path = self.current_key(), self.preview_path()
        panel = self.panels.get(key)
        if panel is None or path is None or not panel.isVisible():
            return False
        self.settings.remove(PREVIEW_KEY)
        buffer = QBuffer()
        buffer.open(QIODevice.WriteOnly)
        if not panel.grab().toImage().save(buffer, "PNG", 60) or buffer.size() > files.LIMITS["image"]:
            return False  # a picture too big to be read back (a huge screen) is not kept
        try:
            files.write_atomic(path, bytes(buffer.data()))
        except ValueError:  # FileProblem: the next start shows the "Loading" line instead
            return False
        self.settings.setValue(f"{PREVIEW_KEY}/workspace", key)
        self.settings.setValue(f"{PREVIEW_KEY}/theme", self.theme_name)
        return True

    def _read_preview(self, key: str) -> None:
        """Read and decode the last look off the GUI thread, then show it in the tab of `key`."""
        from explorer.ui.common.worker import Worker

        path = self.preview_path()
        if path is None:
            return

        def read(_job):
            from PySide6.QtGui import QImage

            from explorer.core import files

            image = QImage()
            image.loadFromData(files.read_bytes(path, "image"), "PNG")
            return image

        self._preview_reader = Worker(self)
        self._preview_reader.sig_done.connect(lambda image: self._show_preview(key, image))
        self._preview_reader.submit(read)  # a missing or unreadable picture: the "Loading" line stays

    def _show_preview(self, key: str, image) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QPixmap
        from PySide6.QtWidgets import QSizePolicy

        if image.isNull() or key in self.panels or key in self.errors:
            return
        layout = self._emptied_slot(key)
        title = next(w[1] for w in WORKSPACES if w[0] == key)
        note = QLabel(f"Restoring the {title} workspace as you left it: this picture turns into the live "
                      "workspace once PyTorch has loaded…")
        note.setObjectName(f"{key}PreviewNote")
        note.setWordWrap(True)
        note.setAlignment(Qt.AlignCenter)
        picture = QLabel()
        picture.setObjectName(f"{key}Preview")
        picture.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        picture.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)  # cropped, never grows the window
        image.setDevicePixelRatio(self.devicePixelRatioF())
        picture.setPixmap(QPixmap.fromImage(image))
        picture.setCursor(Qt.BusyCursor)
        picture.setToolTip("How you left this workspace; it becomes interactive in a moment")
        layout.addWidget(note)
        layout.addWidget(picture, 1)
        self.sig_preview_shown.emit(key)

    # -- Qt events -----------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802
        """Build the visible workspace once the window is on screen (at once if it was painted before)."""
        super().showEvent(event)
        if self._painted:
            QTimer.singleShot(0, self.ensure_current_panel)
        else:  # a window shown but never painted (minimised at start) still gets its panel
            QTimer.singleShot(UNPAINTED_FALLBACK_MS, self, self._paint_fallback)  # not after deletion

    def paintEvent(self, event) -> None:  # noqa: N802
        """After the first paint, build the visible workspace (a restored Network tab imports torch)."""
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self._after_first_paint)

    def closeEvent(self, event) -> None:  # noqa: N802
        """Stop the panels' workers, then save window state and session.

        The panels stop first: a pretraining run stops after its step and writes its checkpoint (the panel
        says so while it waits), so the saved session names the run with that checkpoint.
        """
        pretrain = self.panels.get("pretrain")
        if pretrain is not None and pretrain.is_training():
            self.show_workspace("pretrain")  # where the note about the wait is
            self.statusBar().showMessage("Saving the training run's checkpoint before closing…")
        if self.persist:
            self.save_preview()
        self.shutdown_panels()
        if self.persist:
            self.dock_learn()  # (closed before the first paint's turn ran) the saved state holds the dock
            self.settings.setValue("geometry", self.saveGeometry())
            self.settings.setValue("windowState", self.saveState())
            self.save_splitters()
            self.settings.setValue("theme", self.theme_name)
            position = self.learn.position()
            if position is not None:  # the lessons were loaded: where the student was, for the next start
                self.settings.setValue(POSITION_KEY, position)
            # No model was made (closed while they loaded): the saved session stands as it was, and the
            # close does not wait for the models' import (torch) on the loader's thread.
            if self._workspaces is not None:
                try:
                    self.settings.setValue("session", json.dumps(self.session()))
                except (TypeError, ValueError):  # an unserialisable state is skipped, not fatal
                    pass
            self.settings.sync()
        super().closeEvent(event)

    # -- private -----------------------------------------------------------------------------

    def _restore_window(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        raw = self.settings.value("session")
        if raw:
            # The tab at once (plain JSON); the rest after the first paint, since validating the session
            # imports the models (and torch). The panel is built after that, with the session applied.
            try:
                current = json.loads(str(raw)).get("current")
            except (ValueError, AttributeError, RecursionError):
                current = None
            if current in [w[0] for w in WORKSPACES]:
                self.show_workspace(current)
                shown = [self.settings.value(f"{PREVIEW_KEY}/{k}") for k in ("workspace", "theme")]
                if shown == [current, self.theme_name]:  # the picture shows that workspace as it was
                    self._preview_wanted = current
            self._saved_session = str(raw)  # applied once the models are imported (or asked for)

    def _apply_saved_session(self) -> None:
        """Apply the session saved by the last launch, once (after the first paint, or when a panel or the
        session is asked for before it). Workspaces restored early (`_restore_early`) keep their state and
        the visible tab stays (the user may have worked there meanwhile)."""
        raw, self._saved_session = self._saved_session, None
        if raw is None:
            return
        try:
            if not self._restored_early:
                self.apply_session(raw)
                return
            from explorer.core.workspaces.session import parse_session

            self.workspaces.apply(parse_session(raw), skip=self._restored_early)
        except ValueError:
            pass  # a corrupt or older saved session is ignored: the app opens on the defaults

    def _restore_early(self, key: str) -> None:
        """Give LIGHT workspace `key` its part of the saved session before torch loads (validating the
        whole session imports every workspace's model, torch among them; that waits for the core)."""
        from explorer.core.workspaces.session import SessionError, parse_part

        if self._saved_session is None or key in self._restored_early or self.workspaces.created(key):
            return
        self._restored_early.add(key)
        try:
            state = parse_part(self._saved_session, key)
        except SessionError:
            return  # that part is bad: the workspace opens on its defaults
        if state is not None:
            self.workspaces.restore(key, state)

    def _emptied_slot(self, key: str):
        """The layout of workspace `key`'s tab, emptied of what it showed (a placeholder, a picture)."""
        layout = self._slots[key].layout()
        while layout.count():
            w = layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        return layout

    def _install(self, key: str, title: str, panel: QWidget) -> None:
        layout = self._emptied_slot(key)
        layout.addWidget(panel)
        self.panels[key] = panel
        if self.persist:
            self._restore_splitters(panel)
            later = getattr(panel, "sig_tabs_built", None)  # parts built once torch is in (network)
            if later is not None:
                later.connect(lambda: self._restore_splitters(panel))
        themes.style_labels(panel, themes.get_theme(self.theme_name))
        if hasattr(panel, "set_theme") and self.theme_name != "light":
            panel.set_theme(themes.get_theme(self.theme_name))
        panel_actions = panel.menu_actions() if hasattr(panel, "menu_actions") else []
        if panel_actions:
            menu = self.menuBar().addMenu(title)
            menu.setObjectName(f"{key}Menu")
            for action in panel_actions:
                menu.addAction(action)
            # workspace menus stand in tab order whichever workspace opened first, then Help
            keys = [w[0] for w in WORKSPACES]
            menus = self._workspace_menus
            later = [menus[k] for k in keys[keys.index(key) + 1:] if k in menus]
            before = later[0].menuAction() if later else self._help_menu.menuAction()
            self.menuBar().insertMenu(before, menu)
            self._workspace_menus[key] = menu

    def _show_failure(self, key: str, title: str, exc: Exception) -> None:
        from PySide6.QtCore import Qt

        traceback.print_exc()  # for the developer's terminal; the user sees a sentence
        message = f"{type(exc).__name__}: {exc}"
        self.errors[key] = message
        layout = self._emptied_slot(key)
        label = QLabel(f"<h3>The {title} workspace could not be opened</h3><p>{message}</p>"
                       "<p>The other workspaces still work.</p>")
        label.setObjectName(f"{key}Error")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignCenter)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(label)

    def _paint_fallback(self) -> None:
        if not self._painted and self.isVisible():
            self._painted = True
            self._after_first_paint()

    def _after_first_paint(self) -> None:
        # the frame is on screen (painted and flushed) before this turn; the slots below build more
        self.first_painted_at, self.first_painted_cpu = time.time(), time.process_time()
        self.dock_learn()  # before the slots: a first start shows the dock
        self.sig_first_painted.emit()
        if self._preview_wanted is not None:
            self._read_preview(self._preview_wanted)
        # queued once more: a slot of sig_first_painted that quits (the start-up probe) ends the loop first
        QTimer.singleShot(0, self._load_current_panel)

    def _on_tab_changed(self, _index: int) -> None:
        self._recolour.flush(self.current_key())  # a panel shown in the old theme would flash
        # create the panel once the tab is painted so the switch feels instant; before the window's
        # first paint (a restored session) the first paint builds it
        if self._painted:
            QTimer.singleShot(0, self._load_current_panel)

    def _load_current_panel(self) -> None:
        """Build the visible workspace's panel; first import its core modules on a Worker (the window
        keeps answering meanwhile: its "Loading the … workspace…" line stays up)."""
        key = self.current_key()
        if key in self.panels or key in self.errors or key in self._building:
            return
        if self._shut_down:  # the window closed while the core loaded: a panel built now would be left
            return           # half made in slices when the window goes (a crash at the process's exit)
        light = key in LIGHT and key not in self._core_loaded
        if light:  # built now, before torch; its core modules load meanwhile (below)
            self._restore_early(key)
        if key in self._core_loaded or light:
            self._slicing = True  # the user's visit: a panel that can builds in slices
            try:
                self.ensure_current_panel()
            finally:
                self._slicing = False
            if not light:
                return
            building = self._building.get(key)
            if building is not None:  # built in slices: torch's import would hold the GIL between them
                building.building.sig_done.connect(lambda: self._shut_down or self._load_core(key))
                return
        self._load_core(key)

    def _load_core(self, key: str) -> None:
        """Import workspace `key`'s CORE_MODULES on the loader Worker (`_core_imported` follows)."""
        if key in self._core_loaded:
            return
        if self._core_loader is None:
            from explorer.ui.common.worker import Worker

            self._core_loader = Worker(self, wait_at_quit=False)  # an import cannot stop: the quit goes on
            self._core_loader.sig_done.connect(self._core_imported)
            self._core_loader.sig_failed.connect(lambda _msg: self._core_imported(None))
        elif self._core_loader.is_busy():
            return  # the job running now calls back; it then builds whatever tab is visible

        self._core_loading = key
        self._core_loader.submit(lambda _job, key=key: import_core(key))

    def _core_imported(self, key: str | None) -> None:
        """The core modules are in (or failed: the panel's own import then reports the error in its tab)."""
        # failed: build at once, a failing import shows its error in the tab
        self._core_loaded.add(key if key is not None else self._core_loading)
        if self._shut_down:
            return
        self._apply_saved_session()
        self._load_current_panel()
        self._load_next_core()

    def _load_next_core(self) -> None:
        """Once the visible workspace is ready, import another workspace's core modules in the background,
        one workspace at a time, so that its first visit does not wait for them on the GUI thread."""
        panel = self.panels.get(self.current_key())
        loader = self._core_loader
        if self._shut_down or panel is None or (loader is not None and loader.is_busy()):
            return
        wait = getattr(panel, "graph_wait", None)
        if wait is not None and wait.waiting():  # its first result is not in: it has the machine first
            QTimer.singleShot(BACKGROUND_POLL_MS, self, self._load_next_core)
            return
        later = [k for k, *_ in WORKSPACES if k not in self._core_loaded]
        if later:
            self._load_core(later[0])

    def _error(self, message: str) -> None:
        from PySide6.QtWidgets import QMessageBox

        self.statusBar().showMessage(message, 10000)
        if self.isVisible() and QApplication.platformName() != "offscreen":
            QMessageBox.warning(self, "Autograd Explorer", message)

    def _build_menus(self) -> None:
        """File, Examples, View and Help, their actions from the one table (explorer.ui.common.actions)."""
        handlers = {
            "app.open_session": self._ask_open,
            "app.save_session": self._ask_save,
            "app.export_png": lambda: self._ask_export("png"),
            "app.export_svg": lambda: self._ask_export("svg"),
            "app.export_run": self.export_run,
            "app.export_script": lambda: self._ask_export_code("script"),
            "app.export_notebook": lambda: self._ask_export_code("notebook"),
            "app.quit": self.close,
            "app.fit": lambda: self._on_views("fit"),
            "app.zoom_in": lambda: self._on_views("zoom_in"),
            "app.zoom_out": lambda: self._on_views("zoom_out"),
            "app.memory_overlay": _toggle_memory_overlay,
            "app.find_node": lambda: self._on_views("find"),
            "app.theme_light": lambda: self.set_theme("light", staged=True),
            "app.theme_dark": lambda: self.set_theme("dark", staged=True),
            **{f"app.workspace_{key}": (lambda k=key: self.show_workspace(k)) for key, *_ in WORKSPACES},
            "app.shortcuts": self._show_shortcuts,
            "app.about": self._show_about,
            "app.learn": self.toggle_learn,
        }
        built = {a.property(actions.ACTION_ID): a for a in actions.build(self, handlers)}
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        groups = (("open_session", "save_session"), ("export_png", "export_svg", "export_run"),
                  ("export_script", "export_notebook"), ("quit",))
        for group in groups:
            if not file_menu.isEmpty():
                file_menu.addSeparator()
            for name in group:
                file_menu.addAction(built[f"app.{name}"])
        self.examples_menu = ExamplesMenu("E&xamples", self)  # lists the example files when first opened
        bar.addMenu(self.examples_menu)
        view = bar.addMenu("&View")
        for name in ("fit", "zoom_in", "zoom_out", "find_node"):
            view.addAction(built[f"app.{name}"])
        overlay = built["app.memory_overlay"]
        overlay.setCheckable(True)  # follows the app-wide switch from the first paint on (graph.memory)
        self.sig_first_painted.connect(lambda: _bind_memory_overlay(overlay))  # emitted once
        view.addAction(overlay)
        view.addSeparator()
        self._theme_actions = QActionGroup(self)
        for name in ("light", "dark"):
            action = built[f"app.theme_{name}"]
            action.setCheckable(True)
            action.setData(name)
            action.setChecked(name == self.theme_name)
            self._theme_actions.addAction(action)
            view.addAction(action)
        view.addSeparator()
        for key, *_ in WORKSPACES:
            view.addAction(built[f"app.workspace_{key}"])
        self._help_menu = bar.addMenu("&Help")
        learn = built["app.learn"]
        learn.setCheckable(True)
        self.learn.visibilityChanged.connect(lambda _v: learn.setChecked(not self.learn.isHidden()))
        self._help_menu.addAction(learn)
        self._help_menu.addAction(built["app.shortcuts"])
        self._help_menu.addAction(built["app.about"])

    def _on_views(self, what: str) -> None:
        from explorer.ui.graph.view import GraphView

        panel = self.panels.get(self.current_key())
        for view in panel.findChildren(GraphView) if panel is not None else []:
            if not view.isVisible():
                continue
            {"fit": view.fit, "zoom_in": lambda v=view: v.zoom_by(1.25),
             "zoom_out": lambda v=view: v.zoom_by(0.8), "find": view.show_find}[what]()
            if what == "find":
                return  # one find bar, in the first graph on screen

    def _ask_open(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "Sessions (*.json)")
        if path:
            self.open_session_in_background(path)

    def _ask_save(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Save session", "session.json", "Sessions (*.json)")
        if path:
            try:
                self.save_session(path)
            except (OSError, TypeError, ValueError) as exc:  # files.FileProblem is a ValueError
                self._error(f"Could not save the session: {exc}")

    def _ask_export(self, fmt: str) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, f"Export graph as {fmt.upper()}", f"graph.{fmt}",
                                              f"{fmt.upper()} (*.{fmt})")
        if path:
            self.export_graph(path, fmt)

    def _ask_export_code(self, to: str) -> None:
        from PySide6.QtWidgets import QFileDialog

        suffix = "ipynb" if to == "notebook" else "py"
        name = {"expression": "program", "network": "network", "pretrain": "train_gpt"}[self.current_key()]
        title = "Export as notebook" if to == "notebook" else "Export as Python script"
        kind = "Notebooks (*.ipynb)" if to == "notebook" else "Python scripts (*.py)"
        path, _ = QFileDialog.getSaveFileName(self, title, f"{name}.{suffix}", kind)
        if path:
            self.export_code(path, to)

    def _show_shortcuts(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.information(self, "Keyboard shortcuts", actions.shortcuts_html())

    def _show_about(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.about(self, "About Autograd Explorer", ABOUT_HTML)


def import_core(key: str) -> str:
    """Import workspace `key`'s CORE_MODULES (on the loader Worker) and complete the session schema."""
    for name in CORE_MODULES.get(key, ()):
        importlib.import_module(name)
    from explorer.core.workspaces.session import complete_schema

    complete_schema()
    return key


def _toggle_memory_overlay() -> None:
    from explorer.ui.graph import memory

    memory.setting().set_enabled(not memory.setting().enabled)


def _bind_memory_overlay(action: QAction) -> None:
    from explorer.ui.graph import memory

    memory.bind_menu_action(action)


def _write_code(path: str | Path, text: str) -> Path:
    """Write exported code atomically (on the export worker); FileProblem says what went wrong."""
    from explorer.core import files

    return files.write_atomic(path, text)
