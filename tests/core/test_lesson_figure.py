"""Lesson 3's finite-difference figure asks where the error is smallest: its caption must not say."""

from __future__ import annotations

from explorer.core.lessons import expected, figure_data, load_catalog, open_step
from explorer.core.workspaces.session import Workspaces


def test_the_fd_figure_does_not_give_away_the_answer_its_step_asks_for():
    lesson = next(lesson for lesson in load_catalog().lessons if lesson.id == "gradients-three-ways")
    index = next(i for i, step in enumerate(lesson.steps) if step.figure == "fd_error")
    workspaces = Workspaces()
    open_step(lesson, index, workspaces)
    step = lesson.steps[index]
    fig = figure_data(step, workspaces)
    answer = expected(step, workspaces)
    for text in (fig.title, fig.note):
        assert answer.text not in text, text  # "6e-03" nowhere in the title or the caption
        assert "smallest" not in text
    assert len(fig.title) <= 40  # one line over a 340 px wide plot
    assert len(fig.x) == len(fig.y) > 5
