"""The iteration player shows, at each of its steps, the graph step the core's Timeline mapping gives."""

import pytest

from explorer.core.mlp.network import NetSession, preset_spec
from explorer.ui.network.iteration import IterationView


@pytest.mark.parametrize("preset", ["seed", "mlp-50-30-20-3"])
@pytest.mark.parametrize("skip_zero_grad", [False, True])
def test_the_player_follows_the_cores_graph_steps(qtbot, preset, skip_zero_grad):
    view = IterationView()
    qtbot.addWidget(view)
    view.skip.setChecked(skip_zero_grad)
    view.set_session(NetSession(preset_spec(preset)), iterations=2)
    view.wait_recorded()
    iteration = view.iteration
    assert len(set(iteration.graph_steps)) > 5  # the mapping is not trivially constant
    for k in range(len(iteration.phases) + 1):
        view.player.set_step(k)
        assert view.graph.step == iteration.graph_steps[k]
    view.stop()
