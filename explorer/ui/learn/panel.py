"""The Learn panel: guided lessons in a side dock of the main window (F2, Help > Learn).

It lists the lessons and their steps with ticks, shows a step's text (Markdown), runs the step's action
on the window's workspace models (explorer.core.lessons.run_step, never through widgets), shows the
step's workspace, and checks the student's answers (a hint after the first wrong try, the worked answer
after the second). Ticks are the core's Progress, saved on each tick. The lessons core is imported when
the panel is first shown (it loads the workspace models, and with them torch).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

# The dock exists (and may be on screen) at the window's first paint; its contents are built later. So
# only the dock's own classes are named here, and not PySide's `Qt` namespace (see common/placeholder.py):
# the contents' classes are imported where they are built (`_build`, learn/widgets.py).
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel

from explorer.ui.common import actions
from explorer.ui.common.placeholder import centred_line

if TYPE_CHECKING:
    from PySide6.QtWidgets import QTreeWidgetItem

    from explorer.ui.learn import prefetch

WELCOME_MD = """\
## Welcome to the lessons

These lessons walk, chapter by chapter, through tensors, the chain rule and the computational graph,
gradients three ways, backprop through a small network, the GPT configuration, and pretraining.

Each step sets up a workspace for you and explains what you see. Many steps ask you to **predict a
number before the app reveals it**: type it below and press Enter. A wrong answer earns a hint, a
second one the worked answer.

Pick a lesson in the list above to start. **F2** hides and shows this panel; your ticks are kept.
"""

LEARN_MIN_W = 248  # the dock can be narrowed this far (or floated, or closed with F2) to give the graph room
LEARN_DEFAULT_W = 280  # its width when it first docks beside the workspaces
FEEDBACK_LINES = 6  # the feedback's fixed height in lines (a longer worked answer scrolls)
TICK, OPEN = "✓", "○"
POSITION_KEY = "learn/position"  # the settings key of the page the Learn panel showed at the last close
EXERCISE_TAGS = {"number": "predict", "shape": "predict", "choice": "choose", "do": "do"}
LESSON_ROLE = 0x0100  # Qt.UserRole (a fixed number in Qt's API): item data (lesson index, step index or -1)


def _markdown(text: str) -> str:
    """`lesson_text.label_markdown`, imported on first use (not needed before the first paint)."""
    from explorer.ui.learn.lesson_text import label_markdown

    return label_markdown(text)


def read_lessons():
    """(catalog, progress or None, a problem reading the progress or None): the lessons and the student's
    ticks, read from their files (any thread)."""
    from explorer.core.lessons import Catalog, LessonProblem, Progress, load_catalog

    try:
        catalog = load_catalog()
    except Exception as exc:  # noqa: BLE001 - no lessons at all is still a panel that says why
        catalog = Catalog(problems=[LessonProblem("lessons", _one_line(exc))])
    try:
        return catalog, Progress.load(), None
    except Exception as exc:  # noqa: BLE001 - a broken progress file must not close the lessons
        return catalog, None, f"Your progress could not be read: {_one_line(exc)}"


class LearnPanel(QDockWidget):
    """The dock of the lessons (objectName `lessonPanel`); `window` is the MainWindow it drives."""

    sig_step_shown = Signal(str, str)
    """A step is on screen (its action ran): lesson id, step id."""

    sig_checked = Signal(bool)
    """An answer was checked: whether it was right."""

    def __init__(self, window, parent=None):
        super().__init__("Learn", parent or window)
        self.setObjectName("lessonPanel")  # its allowed areas are set where the window docks it
        self.setToolTip(actions.tooltip("app.learn"))
        self.main_window = window
        self.catalog = None
        self.progress = None
        self.lesson_index: int | None = None
        self.step_index: int | None = None
        self.attempt = 0
        self._opened: tuple[int, int] | None = None  # (lesson, step) whose action ran last
        self.keeper = None  # explorer.core.lessons.snapshot.WorkKeeper: the work a lesson was about to change
        self.complete_index: int | None = None  # the lesson whose "complete" page is on screen
        self._built = False
        self._prefetch: tuple[int, int, int | None] | None = None  # the step whose computations run
        self._prefetcher = None  # the Worker that runs them (made on first use)
        self._reader = None  # the Worker reading the lessons when the dock is first shown
        self._lessons = None  # what it read: (catalog, progress, problem), until the contents are built
        self._placeholder = centred_line("Loading the lessons…")
        self.setWidget(self._placeholder)
        self._waiting_for_paint = False  # showEvent asked to read the lessons after the first paint
        self.setMinimumWidth(LEARN_MIN_W)

    # -- public API ------------------------------------------------------------------------

    def ensure_built(self) -> None:
        """Build the widgets and load the catalog and the progress (once; done when first shown)."""
        if self._built:
            return
        self._built = True
        self._build()
        self._load()

    @property
    def lesson(self):
        """The lesson on screen (None on the welcome page)."""
        return None if self.lesson_index is None else self.catalog.lessons[self.lesson_index]

    @property
    def step(self):
        """The step on screen (None on the welcome page)."""
        return None if self.lesson is None or self.step_index is None else self.lesson.steps[self.step_index]

    def open_step(self, lesson_index: int, step_index: int, act: bool = True) -> None:
        """Show a step: run its action on the workspace models, bring its workspace forward, ask its
        exercise. An action that fails says so in the panel; the text still shows. `act=False` shows the
        step over the workspaces as they are (the position a restart brings back, with its session).

        A step that changes only the expression workspace traces its programs on the Worker first
        (prefetch.py): its actions, exercise and figure follow when that is done (`sig_step_shown`;
        `is_opening()` until then). Other steps show before this returns."""
        self.ensure_built()
        lesson = self.catalog.lessons[lesson_index]
        step = lesson.steps[step_index]
        self.lesson_index, self.step_index, self.attempt = lesson_index, step_index, 0
        self._select_item(lesson_index, step_index)
        self.title.setText(f"<b>{_escape(lesson.title)}</b> · step {step_index + 1} of {len(lesson.steps)}: "
                           f"{_escape(step.title)}")
        note = self.text.show_lesson_text(step.text, lesson.folder)  # inert: see lesson_text.py
        self.feedback.setText("")
        self._show_error(note)
        if step.workspace and act:
            self.main_window.show_workspace(step.workspace)
        if not act:
            self._cancel_prefetch()
            self._opened = (lesson_index, step_index)  # Next runs only the next step's actions
            self._show_step_end(lesson, step)
            return
        after = self._opened[1] if self._opened is not None and self._opened[0] == lesson_index else None
        first = step_index if after is not None and after in (step_index - 1, step_index) else 0
        touched = list(dict.fromkeys(s.workspace for s in lesson.steps[first:step_index + 1]
                                     if s.workspace and s.actions))
        self._cancel_prefetch()
        if touched == ["expression"]:
            # its programs are traced on the Worker first; the actions then run here with those results
            self._prefetch = (lesson_index, step_index, after)
            self.check_button.setEnabled(False)  # until the step's state is there to check against
            from explorer.ui.learn import prefetch

            ws = self.main_window.workspaces.expression
            state, seed = ws.to_json(), ws.result
            self._worker().submit(lambda job: prefetch.precompute(lesson, step_index, state, seed, after,
                                                                  lambda: job.cancelled))
            return
        from explorer.ui.learn import prefetch

        self._run_actions(lesson_index, step_index, after, prefetch.Prefetched([]))

    def is_opening(self) -> bool:
        """True while a step's computations run on the Worker (the step shows when they are done)."""
        return self._prefetch is not None

    def wait_opened(self, timeout: float = 60.0) -> bool:
        """Process events until the step being opened is shown (screenshots, scripts); True when shown."""
        if self._prefetch is not None and self._prefetcher is not None:
            self._prefetcher.wait(timeout)
        return self._prefetch is None

    def _worker(self):
        if self._prefetcher is None:
            from explorer.ui.common.worker import Worker
            from explorer.ui.learn import prefetch

            self._prefetcher = Worker(self)
            self._prefetcher.sig_done.connect(self._on_prefetched)
            self._prefetcher.sig_failed.connect(lambda _message: self._on_prefetched(prefetch.Prefetched([])))
        return self._prefetcher

    def _cancel_prefetch(self) -> None:
        if self._prefetch is not None and self._prefetcher is not None:
            self._prefetcher.cancel()
        self._prefetch = None

    def _on_prefetched(self, made: prefetch.Prefetched) -> None:
        pending, self._prefetch = self._prefetch, None
        if pending is None:
            return
        self._run_actions(*pending, made)

    def _run_actions(self, lesson_index: int, step_index: int, after: int | None,
                     made: prefetch.Prefetched) -> None:
        """Run the step's actions on the window's workspaces (GUI thread), with the results `made` on the
        Worker for the same states (prefetch.py), then show the step's exercise and figure."""
        from explorer.core.lessons import open_step

        lesson = self.catalog.lessons[lesson_index]
        step = lesson.steps[step_index]
        self._opened = (lesson_index, step_index)
        workspaces = self.main_window.workspaces
        first = step_index if after is not None and after in (step_index - 1, step_index) else 0
        touched = list(dict.fromkeys(s.workspace for s in lesson.steps[first:step_index + 1]
                                     if s.workspace and s.actions))
        from PySide6.QtCore import Qt

        QApplication.setOverrideCursor(Qt.WaitCursor)  # a first network step builds torch's optimizer
        # the expression workspace is drawn once after the step's actions (its last result, step and
        # losses, the inspector once), not after each of them
        expression = getattr(self.main_window, "panels", {}).get("expression")
        held = getattr(expression, "held_view", None)
        if made.checks is not None and hasattr(expression, "offer_checks"):
            expression.offer_checks(*made.checks)  # the inspector's gradient check, made on the Worker
        answered = workspaces.expression.answered_from(made.made) if made.made else nullcontext()
        try:
            with held() if held is not None else nullcontext(), answered:
                for key in touched:  # the user's own work is kept before the step changes it
                    self.keeper.before_step(workspaces, key, lesson.id)
                open_step(lesson, step_index, workspaces, after)
                for key in touched:
                    self.keeper.after_step(workspaces, key)
        except Exception as exc:  # noqa: BLE001 - a lesson's action must never leave a traceback to the user
            self._show_error(f"This step's action could not run: {_one_line(exc)}")
        finally:
            QApplication.restoreOverrideCursor()
        self._show_step_end(lesson, step)

    def _show_step_end(self, lesson, step) -> None:
        self.complete_index = None
        self.check_button.setEnabled(True)
        self.next_button.setText("Next ▶")
        self.next_button.setEnabled(True)
        self._show_restore_offer()
        self._show_exercise(step)
        self._show_figure(step)
        self.sig_step_shown.emit(lesson.id, step.id)

    def position(self) -> str | None:
        """Where the student is, for the next start: "" (welcome), "lesson-id/step-id" or
        "lesson-id/complete"; None before the lessons were loaded (nothing to save)."""
        if not self._built or self.catalog is None:
            return None
        if self.complete_index is not None:
            return f"{self.catalog.lessons[self.complete_index].id}/complete"
        if self.lesson is None or self.step is None:
            return ""
        return f"{self.lesson.id}/{self.step.id}"

    def restore_position(self, text: str) -> bool:
        """Show the page `position()` wrote, over the restored workspaces (no step action runs); False
        when the lesson or step no longer exists (the welcome page stays)."""
        self.ensure_built()
        lesson_id, _, step_id = str(text).partition("/")
        for i, lesson in enumerate(self.catalog.lessons):
            if lesson.id != lesson_id:
                continue
            if step_id == "complete":
                self.show_complete(i)
                return True
            for j, step in enumerate(lesson.steps):
                if step.id == step_id:
                    self.open_step(i, j, act=False)
                    return True
        return False

    def check_answer(self) -> None:
        """Check the answer (or, for a "do" exercise, the state): right ticks the step; wrong gives the
        hint after the first try and the worked answer after the second."""
        step, lesson = self.step, self.lesson
        if step is None or step.exercise is None:
            return
        from explorer.core.lessons import check

        self.attempt += 1
        try:
            feedback = check(step, self.main_window.workspaces, self._answer_text(), self.attempt)
        except Exception as exc:  # noqa: BLE001 - say what went wrong, in the panel
            self.attempt -= 1
            self.feedback.setText(_markdown(f"⚠ Could not check this: {_one_line(exc)}"))
            return
        if not feedback.counted:
            self.attempt -= 1  # not an answer at all (no number in it): the try does not count
        # the core's message carries the hint after the first wrong try and the worked answer after the second
        self.feedback.setText(_markdown(("✓ " if feedback.correct else "✗ ") + feedback.message))
        if feedback.correct:
            self._tick(lesson, step)
        self.sig_checked.emit(bool(feedback.correct))

    def next_step(self) -> None:
        """The next step, or the first step of the next lesson; a step without an exercise is ticked
        when the student moves on from it."""
        self.ensure_built()
        lessons = self.catalog.lessons
        if not lessons:
            return
        if self.step is not None and self.step.exercise is None:
            self._tick(self.lesson, self.step)
        if self.complete_index is not None:  # the "lesson complete" page: on to the next lesson
            following = self.complete_index + 1
            if following < len(lessons):
                self.open_step(following, 0)
            return
        if self.lesson_index is None:
            self.open_step(0, 0)
            return
        if self.step_index + 1 < len(self.lesson.steps):
            self.open_step(self.lesson_index, self.step_index + 1)
        else:
            self.show_complete(self.lesson_index)

    def show_complete(self, lesson_index: int) -> None:
        """The "lesson complete" page: what was done, the next lesson (never entered silently), and the
        offer to restore the work the lesson changed."""
        self.ensure_built()
        self._cancel_prefetch()
        self.check_button.setEnabled(True)
        lessons = self.catalog.lessons
        lesson = lessons[lesson_index]
        self.lesson_index = self.step_index = None
        self.complete_index = lesson_index
        done = self.progress.completed(lesson) if self.progress is not None else 0
        self.title.setText(f"<b>Lesson complete: {_escape(lesson.title)}</b>")
        following = lessons[lesson_index + 1] if lesson_index + 1 < len(lessons) else None
        text = f"You have done **{done} of {len(lesson.steps)}** steps of this lesson. "
        if following is not None:
            text += (f"The next lesson is **{_escape(following.title)}**: press *Next lesson* when you are "
                     "ready, or pick any lesson or step in the list above.")
        else:
            text += "🎉 That was the last lesson. Well done! Pick any step in the list to revisit it."
        self.text.setMarkdown(text)
        self._show_exercise(None)
        self._show_figure(None)
        self._show_error("")
        self.feedback.setText("")
        self.next_button.setText("Next lesson ▶")
        self.next_button.setEnabled(following is not None)
        self._show_restore_offer()

    def restore_work(self) -> list[str]:
        """Put back the work the lessons changed (the snapshots taken before their steps); the titles of
        the workspaces restored."""
        if self.keeper is None:
            return []
        restored = self.keeper.restore(self.main_window.workspaces)
        self._show_restore_offer()
        if restored:
            self.feedback.setText(f"Your work is back in: {', '.join(restored)}.")
        return restored

    def keep_lesson_state(self) -> None:
        """Forget the snapshots: the workspaces stay as the lesson left them."""
        if self.keeper is not None:
            self.keeper.discard()
        self._show_restore_offer()

    def show_welcome(self) -> None:
        """The welcome page: what the lessons are and how to use them."""
        self.ensure_built()
        self._cancel_prefetch()
        self.check_button.setEnabled(True)
        self.lesson_index = self.step_index = self.complete_index = None
        self.title.setText("<b>Learn</b>")
        self.text.setMarkdown(WELCOME_MD)
        self._show_exercise(None)
        self._show_figure(None)
        self.feedback.setText("")
        self.next_button.setText("Start ▶")
        self.next_button.setEnabled(True)
        self._show_restore_offer()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the figure (the widgets follow the application's style sheet)."""
        self._theme = theme
        if self._built:
            self._apply_theme()

    # -- Qt events -----------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802
        """Build the contents once the dock is on screen, after the window's first paint; the lessons are
        read on a Worker first (the lessons core loads the workspace models, and with them torch: seconds
        in which the window must keep answering)."""
        super().showEvent(event)
        if self._built:
            return
        if self.main_window.is_painted():
            QTimer.singleShot(0, self._read_in_background)
        elif not self._waiting_for_paint:  # the window emits sig_first_painted once
            self._waiting_for_paint = True
            self.main_window.sig_first_painted.connect(self._read_in_background)

    # -- private -----------------------------------------------------------------------------

    def _build(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import (
            QFrame,
            QHBoxLayout,
            QLineEdit,
            QPushButton,
            QScrollArea,
            QSplitter,
            QVBoxLayout,
            QWidget,
        )

        from explorer.ui.common import theme as themes
        from explorer.ui.common.plot_menus import plot_widget
        from explorer.ui.learn.lesson_text import LessonText
        from explorer.ui.learn.widgets import ChoiceBox, WrappingTree

        self._theme = getattr(self, "_theme", None) or themes.get_theme()
        self.tree = WrappingTree()
        self.tree.setObjectName("lessonList")
        self.tree.setHeaderHidden(True)
        self.tree.setToolTip("The lessons and their steps; ✓ marks what you have done")
        self.tree.itemActivated.connect(self._on_item_activated)
        self.tree.itemClicked.connect(self._on_item_activated)
        self.problems = QLabel("")
        self.problems.setObjectName("lessonProblems")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.PlainText)  # names and messages from lesson files: never HTML
        self.problems.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problems.setVisible(False)
        top = QWidget()
        tv = QVBoxLayout(top)
        tv.setContentsMargins(4, 4, 4, 0)
        tv.addWidget(self.tree, 1)
        tv.addWidget(self.problems)

        self.title = QLabel("")
        self.title.setObjectName("lessonStepTitle")
        self.title.setWordWrap(True)
        self.text = LessonText()  # objectName lessonText; renders lesson text inert
        self.text.sig_note.connect(self._show_error)
        self.error = QLabel("")
        self.error.setObjectName("lessonError")
        self.error.setWordWrap(True)
        self.error.setTextFormat(Qt.PlainText)  # messages may quote a lesson: never HTML
        self.error.setVisible(False)
        self.figure = plot_widget()
        self.figure.setObjectName("lessonFigure")
        self.figure.setMinimumHeight(180)
        self.figure.showGrid(x=True, y=True, alpha=0.3)
        for axis in ("left", "bottom"):
            self.figure.getAxis(axis).enableAutoSIPrefix(False)
        self._figure_curve = self.figure.plot([], [], symbol="o", symbolSize=5)
        self._figure_title = ""
        self.figure_note = QLabel("")
        self.figure_note.setObjectName("lessonFigureNote")
        self.figure_note.setWordWrap(True)
        self.figure.setVisible(False)
        self.figure_note.setVisible(False)
        self.prompt = QLabel("")
        self.prompt.setObjectName("lessonPrompt")
        self.prompt.setWordWrap(True)
        self.prompt.setTextFormat(Qt.MarkdownText)
        self.answer_edit = QLineEdit()
        self.answer_edit.setPlaceholderText("your answer, then Enter")
        self.answer_edit.returnPressed.connect(self.check_answer)
        self.answer_choice = ChoiceBox()
        self.answer_choice.sig_enter.connect(self.check_answer)
        self.check_button = QPushButton("Check")
        self.check_button.setObjectName("lessonCheck")
        self.check_button.setToolTip("Check your answer against the value the app computes from the state")
        self.check_button.clicked.connect(self.check_answer)
        self.feedback = QLabel("")
        self.feedback.setObjectName("lessonFeedback")
        self.feedback.setWordWrap(True)
        self.feedback.setTextFormat(Qt.MarkdownText)
        self.feedback.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.next_button = QPushButton("Next ▶")
        self.next_button.setObjectName("lessonNext")
        self.next_button.setToolTip("The next step (after the last step of a lesson: the next lesson)")
        self.next_button.clicked.connect(self.next_step)
        answer_row = QHBoxLayout()
        answer_row.addWidget(self.answer_edit, 1)
        answer_row.addWidget(self.answer_choice, 1)
        answer_row.addWidget(self.check_button)
        bottom = QWidget()
        bv = QVBoxLayout(bottom)
        bv.setContentsMargins(4, 0, 4, 4)
        bv.addWidget(self.title)
        bv.addWidget(self.text, 3)
        bv.addWidget(self.error)
        bv.addWidget(self.figure, 2)
        bv.addWidget(self.figure_note)
        bv.addWidget(self.prompt)
        bv.addLayout(answer_row)
        # The feedback scrolls inside a fixed height: a long worked answer never pushes the Check button
        # (or anything else) to another place, so a second click lands where the first did.
        self.feedback_area = QScrollArea()
        self.feedback_area.setObjectName("lessonFeedbackArea")
        self.feedback_area.setWidget(self.feedback)
        self.feedback_area.setWidgetResizable(True)
        self.feedback_area.setFrameShape(QFrame.NoFrame)
        self.feedback_area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.feedback_area.setFixedHeight(self.feedback.fontMetrics().lineSpacing() * FEEDBACK_LINES + 8)
        bv.addWidget(self.feedback_area)
        from explorer.core.lessons.snapshot import WorkKeeper

        self.keeper = WorkKeeper()
        self.restore_note = QLabel("")
        self.restore_note.setObjectName("lessonRestoreNote")
        self.restore_note.setWordWrap(True)
        self.restore_button = QPushButton("Restore my work")
        self.restore_button.setObjectName("lessonRestoreWork")
        self.restore_button.setToolTip("Put back the program, network or form you had before the lesson "
                                       "changed it (kept when its step opened)")
        self.restore_button.clicked.connect(self.restore_work)
        self.keep_button = QPushButton("Keep the lesson's")
        self.keep_button.setObjectName("lessonKeepState")
        self.keep_button.setToolTip("Forget the kept work: the workspaces stay as the lesson left them")
        self.keep_button.clicked.connect(self.keep_lesson_state)
        restore_row = QHBoxLayout()
        restore_row.addStretch(1)
        restore_row.addWidget(self.restore_button)
        restore_row.addWidget(self.keep_button)
        self.restore_bar = QWidget()
        self.restore_bar.setObjectName("lessonRestoreBar")
        restore_layout = QVBoxLayout(self.restore_bar)  # the sentence on its own line, the buttons under it
        restore_layout.setContentsMargins(0, 4, 0, 4)
        restore_layout.addWidget(self.restore_note)
        restore_layout.addLayout(restore_row)
        self.restore_bar.setVisible(False)
        bv.addWidget(self.restore_bar)
        nav = QHBoxLayout()
        nav.addStretch(1)
        nav.addWidget(self.next_button)
        bv.addLayout(nav)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([220, 600])
        self.setWidget(split)
        self._placeholder.deleteLater()
        self._apply_theme()

    def _read_in_background(self) -> None:
        """Read the catalog and the progress on a Worker, then build (a caller of `ensure_built` before
        they arrive reads them itself, and the Worker's result is dropped)."""
        if self._built or self._reader is not None:
            return
        if not self.main_window.workspace_ready():  # the visible workspace's panel is built first
            from PySide6.QtCore import Qt

            self.main_window.sig_panel_ready.connect(lambda _key: self._read_in_background(),
                                                     Qt.SingleShotConnection)
            return
        from explorer.ui.common.worker import Worker

        self._reader = Worker(self)
        self._reader.sig_done.connect(self._lessons_read)
        self._reader.sig_failed.connect(lambda _message: self.ensure_built())  # read again, and say why
        self._reader.submit(lambda _job: read_lessons())

    def _lessons_read(self, lessons) -> None:
        if not self._built:
            self._lessons = lessons
            self.ensure_built()

    def _load(self) -> None:
        lessons, self._lessons = self._lessons, None
        self.catalog, self.progress, problem = lessons if lessons is not None else read_lessons()
        if problem:
            self._show_error(problem)
        problems = [f"⚠ {p.file}: {p.message}" for p in self.catalog.problems]
        self.problems.setText("Lesson files that could not be loaded:\n" + "\n".join(problems))
        self.problems.setVisible(bool(problems))
        self._fill_tree()
        self.show_welcome()
        settings = getattr(self.main_window, "settings", None)
        if settings is not None and getattr(self.main_window, "persist", False):
            saved = settings.value(POSITION_KEY, "")
            if saved:
                self.restore_position(str(saved))

    def _fill_tree(self) -> None:
        from PySide6.QtWidgets import QTreeWidgetItem

        self.tree.clear()
        for i, lesson in enumerate(self.catalog.lessons):
            top = QTreeWidgetItem([""])
            top.setData(0, LESSON_ROLE, (i, -1))
            top.setToolTip(0, f"<p>{_escape(lesson.summary or lesson.title)}</p>")  # rich text, escaped
            for j in range(len(lesson.steps)):
                child = QTreeWidgetItem([""])
                child.setData(0, LESSON_ROLE, (i, j))
                top.addChild(child)
            self.tree.addTopLevelItem(top)
            self._refresh_lesson_item(i)

    def _refresh_lesson_item(self, i: int) -> None:
        lesson = self.catalog.lessons[i]
        top = self.tree.topLevelItem(i)
        done = self._completed(lesson)
        mark = TICK if done == len(lesson.steps) and lesson.steps else " "
        top.setText(0, f"{mark} {lesson.title}  ({done}/{len(lesson.steps)})")
        for j, step in enumerate(lesson.steps):
            ticked = self.progress is not None and self.progress.done(lesson.id, step.id)
            kind = f"  · {EXERCISE_TAGS[step.exercise.kind]}" if step.exercise is not None else ""
            top.child(j).setText(0, f"{TICK if ticked else OPEN} {step.title}{kind}")

    def _completed(self, lesson) -> int:
        return self.progress.completed(lesson) if self.progress is not None else 0

    def _tick(self, lesson, step) -> None:
        if self.progress is None or self.progress.done(lesson.id, step.id):
            return
        self.progress.mark(lesson.id, step.id)
        try:
            self.progress.save()
        except Exception as exc:  # noqa: BLE001 - the tick stays on screen; say it was not kept
            self._show_error(f"Your progress could not be saved: {_one_line(exc)}")
        self._refresh_lesson_item(self.catalog.lessons.index(lesson))

    def _select_item(self, i: int, j: int) -> None:
        item = self.tree.topLevelItem(i).child(j)
        self.tree.blockSignals(True)
        self.tree.topLevelItem(i).setExpanded(True)
        self.tree.setCurrentItem(item)
        self.tree.blockSignals(False)
        self.next_button.setText("Next ▶")

    def _on_item_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        i, j = item.data(0, LESSON_ROLE)
        if j >= 0:
            self.open_step(i, j)  # a step picked again runs its action again: a fresh start of the step
        elif i != self.lesson_index:
            self.open_step(i, 0)  # a lesson: its first step (within the lesson, a click only folds it)

    def _show_exercise(self, step) -> None:
        exercise = step.exercise if step is not None else None
        kind = exercise.kind if exercise is not None else None
        self.prompt.setText(_markdown(exercise.prompt) if exercise is not None else "")
        self.prompt.setVisible(exercise is not None)
        self.answer_edit.clear()
        self.answer_choice.clear()
        is_choice = kind == "choice"
        # the widget the student answers in carries the name lessonAnswer, the other one does not
        self.answer_edit.setObjectName("lessonAnswer" if not is_choice else "lessonAnswerText")
        self.answer_choice.setObjectName("lessonAnswer" if is_choice else "lessonAnswerChoice")
        if is_choice:
            self.answer_choice.addItems(list(exercise.choices))
        self.answer_edit.setVisible(kind in ("number", "shape"))
        self.answer_edit.setPlaceholderText("a shape such as (2, 3), then Enter" if kind == "shape"
                                            else "your answer, then Enter")
        self.answer_choice.setVisible(is_choice)
        self.check_button.setVisible(exercise is not None)
        self.check_button.setText("Check what I did" if kind == "do" else "Check")
        if kind in ("number", "shape"):
            from PySide6.QtCore import Qt

            self.answer_edit.setFocus(Qt.OtherFocusReason)

    def _answer_text(self) -> str:
        kind = self.step.exercise.kind
        if kind == "choice":
            return self.answer_choice.currentText()
        return "" if kind == "do" else self.answer_edit.text()

    def _show_figure(self, step) -> None:
        name = getattr(step, "figure", None) if step is not None else None
        if not name:
            self.figure.setVisible(False)
            self.figure_note.setVisible(False)
            return
        from explorer.core import lessons

        try:
            fig = lessons.figure_data(step, self.main_window.workspaces)
        except Exception as exc:  # noqa: BLE001 - the step still reads without its figure
            self.figure.setVisible(False)
            self.figure_note.setText(f"⚠ The figure could not be drawn: {_one_line(exc)}")
            self.figure_note.setVisible(True)
            return
        plot = self.figure.getPlotItem()
        plot.setLogMode(x=bool(fig.logx), y=bool(fig.logy))
        self._figure_curve.setData(list(fig.x), list(fig.y))
        self._figure_title = fig.title
        plot.setLabel("bottom", fig.xlabel)
        plot.setLabel("left", fig.ylabel)
        plot.enableAutoRange()
        self.figure_note.setText(fig.note or "")
        self.figure.setVisible(True)
        self.figure_note.setVisible(bool(fig.note))
        self._apply_theme()

    def _apply_theme(self) -> None:
        import pyqtgraph as pg

        theme = self._theme
        for label in (self.error, self.problems):
            label.setStyleSheet(f"color: {theme['error']};")
        self.figure.setBackground(theme["panel"])
        for axis in ("left", "bottom"):
            ax = self.figure.getAxis(axis)
            ax.setPen(theme["muted"])
            ax.setTextPen(theme["muted"])
            ax.label.setDefaultTextColor(pg.mkColor(theme["muted"]))
        self.figure.getPlotItem().setTitle(self._figure_title or None, color=theme["text"])
        colour = theme["grad"]
        self._figure_curve.setPen(pg.mkPen(colour, width=2))
        self._figure_curve.setSymbolBrush(colour)
        self._figure_curve.setSymbolPen(colour)

    def _show_restore_offer(self) -> None:
        """The offer to restore the user's work, once the lesson that changed it ended or was left."""
        if not self._built or self.keeper is None:
            return
        inside = self.lesson is not None and self.lesson.id == self.keeper.lesson_id
        names = self.keeper.names()
        self.restore_bar.setVisible(bool(names) and not inside)
        self.restore_note.setText(f"The lesson changed your work in {', '.join(names)}. Restore it?"
                                  if names else "")

    def _show_error(self, message: str) -> None:
        if not self._built:
            return
        self.error.setText(f"⚠ {message}" if message else "")
        self.error.setVisible(bool(message))


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))
