"""The expression workspace keeps every iteration of a training loop; switching does not re-run it."""

from __future__ import annotations

from explorer.core.workspaces.expression import compute

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
