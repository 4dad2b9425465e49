"""The expression workspace keeps every iteration of a training loop; switching does not re-run it."""

from __future__ import annotations

from explorer.core.workspaces.expression import ExpressionWorkspace, compute

LOOP = """import torch
w = torch.tensor(2.0, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.01)
for i in range(4):
    opt.zero_grad()
    loss = (w * 3.0 - 1.0) ** 2
    loss.backward()
    opt.step()
    print(i, loss.item())
"""


def test_a_cancelled_run_stops_with_a_clear_error():
    result = compute(LOOP.replace("range(4)", "range(100)"), cancelled=lambda: True)
    assert not result.ok
    assert "cancel" in result.error


def test_switching_iterations_does_not_run_the_program_again(monkeypatch):
    ws = ExpressionWorkspace(LOOP)
    ws.compute_now()
    assert ws.iteration_count == 4 and ws.result.iteration == 3 and ws.state.iteration is None
    losses = ws.iteration_losses()
    assert losses[0] == 25.0 and losses[0] > losses[1] > losses[2] > losses[3]
    seen = []
    ws.events.computed.connect(seen.append)
    import explorer.core.lang.program as program_module

    def refuse(*_a, **_k):
        raise AssertionError("the program ran again")

    monkeypatch.setattr(program_module.Program, "run", refuse)
    ws.set_iteration(0)
    assert ws.state.iteration == 0 and ws.result.iteration == 0 and len(seen) == 1
    out = ws.result.trace.nodes[ws.result.trace.output_id]
    assert float(out.value.item()) == 25.0  # the first iteration's graph, not the last one's
    assert ws.timeline.trace is ws.result.trace
    ws.set_iteration(99)  # clamped to the last, saved as None
    assert ws.state.iteration is None and ws.result.iteration == 3


def test_the_iteration_is_saved_and_old_sessions_still_load():
    ws = ExpressionWorkspace(LOOP)
    ws.compute_now()
    ws.set_iteration(1)
    data = ws.to_json()
    assert data["iteration"] == 1
    restored = ExpressionWorkspace()
    restored.load(ExpressionWorkspace.validate(data))
    restored.compute_now()
    assert restored.result.iteration == 1
    old = {k: v for k, v in data.items() if k != "iteration"}
    assert ExpressionWorkspace.validate(old).iteration is None
    ws.set_source(LOOP + "\n")
    assert ws.state.iteration is None


def test_the_status_of_a_backward_step_names_its_pass_when_there_are_several():
    from explorer.core.autograd.timeline import Timeline

    twice = compute("import torch\na = torch.tensor(2.0, requires_grad=True)\ny = a * a\n"
                    "y.backward(retain_graph=True)\ny.backward()\n")
    tl = Timeline(twice.trace)
    texts = [tl.status(k) for k in range(tl.forward_length + 1, tl.length + 1)]
    assert all(t.startswith("backward pass 1 of 2 (line 4)") for t in texts[:2])
    assert all(t.startswith("backward pass 2 of 2 (line 5): .grad accumulates") for t in texts[2:])
    once = compute("import torch\na = torch.tensor(2.0, requires_grad=True)\ny = a * a\ny.backward()\n")
    tl1 = Timeline(once.trace)
    assert all("pass" not in tl1.status(k) for k in range(tl1.length + 1))  # one pass: texts unchanged
    assert all(tl1.status(k).startswith(("Ready", "forward", "backward ")) for k in range(tl1.length + 1))


def test_the_last_step_lists_the_optimizer_events():
    from explorer.core.autograd.timeline import Timeline

    result = compute(LOOP)
    tl = Timeline(result.trace)
    assert result.trace.events
    last = tl.status(tl.length)
    assert "SGD.step()" in last and "step()" not in tl.status(tl.length - 1)
