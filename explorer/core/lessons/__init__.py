"""Guided lessons: data files (assets/lessons) that drive the workspace models step by step.

THE CONTRACT between the lessons core and the Learn panel (ui/learn). The panel uses only these names:

    catalog = load_catalog()                  # every lesson file; bad files listed, the others still load
    catalog.lessons: list[Lesson]             # in the seed's order
    catalog.problems: list[LessonProblem]     # (file name, one-line message naming the bad field)
    lesson.id, lesson.title, lesson.summary, lesson.steps: list[Step]
    step.id, step.title, step.text (Markdown; formulas as inline code or Unicode), step.workspace
      ("expression" | "network" | "pretrain" | None: the workspace the panel shows for the step),
      step.exercise: Exercise | None
    exercise.kind: "number" | "shape" | "choice" | "do"; exercise.prompt; exercise.choices: list[str]

    run_step(step, workspaces)                # applies the step's action through the models (never widgets)
    open_step(lesson, index, workspaces, after)  # the same, after the lesson's earlier steps unless `after`
                                              # (the step opened just before) is index - 1
    check(step, workspaces, answer, attempt)  # -> Feedback; attempt from 1 (hint after 1, worked after 2)
    expected(step, workspaces)                # -> Expected: the answer computed from the state at that step

    progress = Progress.load()                # ticks, in data_dir()/lessons-progress.json (atomic writes)
    progress.done(lesson_id, step_id) -> bool; progress.mark(lesson_id, step_id); progress.save()
    progress.completed(lesson) -> int         # how many of its steps are ticked

    step.figure: str | None ("fd_error")      # a plot the step shows
    figure_data(step, workspaces) -> Figure   # title, x, y, xlabel, ylabel, logx, logy, note

`workspaces` is explorer.core.workspaces.session.Workspaces. Expected answers are never typed into a lesson
file: they are computed from the workspace state (a node's gradient, a config's parameter count, a product's
shape). The implementations live in the submodules; this module re-exports them.
"""

from explorer.core.lessons.model import (  # noqa: F401
    Catalog,
    Exercise,
    Expected,
    Feedback,
    Figure,
    Lesson,
    LessonError,
    LessonProblem,
    Step,
)
from explorer.core.lessons.progress import Progress  # noqa: F401
from explorer.core.lessons.runner import (  # noqa: F401
    check,
    expected,
    figure_data,
    load_catalog,
    open_step,
    run_step,
)
