"""The core's `Iteration.graph_steps` equals what the iteration view maps today (until it uses the core's)."""

from types import SimpleNamespace

import pytest

from explorer.core.mlp.network import NetSession, preset_spec
from explorer.ui.network.iteration import IterationView


@pytest.mark.parametrize("preset", ["seed", "mlp-50-30-20-3"])
@pytest.mark.parametrize("skip_zero_grad", [False, True])
def test_core_graph_steps_equal_the_views_mapping(preset, skip_zero_grad):
    session = NetSession(preset_spec(preset))
    session.run_iteration()
    iteration = session.run_iteration(skip_zero_grad=skip_zero_grad)
    assert iteration.graph_steps == IterationView._map_graph_steps(SimpleNamespace(_iteration=iteration))
    assert len(set(iteration.graph_steps)) > 5  # the mapping is not trivially constant
