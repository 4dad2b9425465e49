"""Network health of a GPT run, per transformer block: gradient norms and update-to-weight ratios.

The trainer asks a `BlockHealth` for the fields of a step record; the figures are measured by hooks
on the optimizer, so the training loop itself has one line for them:

    block_grad_norms[i]  the L2 norm of the gradient of every parameter of block i together, before
                         gradient clipping (the norms of the blocks' gradients add up in squares)
    update_ratios[i]     |Δw| / |w| of block i over the optimizer step: the norm of the change the
                         step made to the block's parameters (lr x AdamW's update, weight decay
                         included) over the norm of the parameters before it. About 1e-3 is healthy;
                         far above, the step is too large for its weight; far below, the block hardly
                         learns.

Both lists run over the blocks in order. A value that is not finite is None (JSON null). The figures
are measured on the first step and every `health_every` steps after that, on steps that are logged;
measuring costs a copy of the blocks' weights and a few norms on those steps only, and one transfer
to the host when the record is built (no extra synchronisation on other steps).
"""

from __future__ import annotations

import math

import torch

from explorer.core.speed import few_threads_for

GUIDE_RATIO = 1e-3  # the usual rule of thumb for |lr·update| / |w| (Karpathy, "A Recipe for Training NNs")


def due(step: int, every: int, log_every: int, last_step: int) -> bool:
    """Whether optimizer step `step` (1-based, as in step records) gets health figures."""
    if every <= 0:
        return False
    logged = step % log_every == 0 or step == last_step
    return logged and (step == 1 or step % every == 0)


def finite_or_none(values) -> list[float | None]:
    """Plain floats, None where a value is NaN or infinite (so the list is valid JSON)."""
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def group_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of several tensors taken as one vector (a 0-d float32 tensor on their device)."""
    if not tensors:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(tensors, norm_type=2.0).float()


def block_grad_norms(blocks) -> list[float | None]:
    """The gradient norm of each block (None-grads skipped), measured directly: a reference for tests."""
    norms = [group_norm([p.grad for p in block.parameters() if p.grad is not None]) for block in blocks]
    return finite_or_none(torch.stack(norms).tolist()) if norms else []


class BlockHealth:
    """Measures per-block gradient norms and update ratios through optimizer step hooks.

    `step_of()` gives the trainer's step before the update (0-based); `settings` its TrainSettings
    (health_every, log_every, steps, grad_clip are read on each step, so a resumed run's changes hold).
    """

    def __init__(self, blocks, optimizer: torch.optim.Optimizer, settings, step_of) -> None:
        self.blocks = list(blocks)
        self.settings = settings
        self.step_of = step_of
        self._pending: dict | None = None  # figures of the step just taken, still on the device
        self.parameters = sum(p.numel() for block in self.blocks for p in block.parameters())
        optimizer.register_step_pre_hook(self._before_update)
        optimizer.register_step_post_hook(self._after_update)

    def fields(self, step: int, grad_norm: float) -> dict:
        """`block_grad_norms` and `update_ratios` for the step record of `step`, or {} when not measured.

        `grad_norm` is the step's global norm before clipping: the hooks see clipped gradients, and
        clipping scales every gradient by the same factor, which is undone here.
        """
        pending, self._pending = self._pending, None
        if pending is None or pending["step"] != step or "update" not in pending:
            return {}
        stacked = torch.stack([pending["grad"], pending["update"], pending["weight"]]).tolist()
        grads, updates, weights = stacked
        clip = self.settings.grad_clip
        scale = 1.0
        if clip > 0 and math.isfinite(grad_norm):
            coef = clip / (grad_norm + 1e-6)  # clip_grad_norm_'s own factor
            if coef < 1.0:
                scale = 1.0 / coef
        ratios = [u / w if w > 0 else math.nan for u, w in zip(updates, weights, strict=True)]
        return {"block_grad_norms": finite_or_none(g * scale for g in grads),
                "update_ratios": finite_or_none(ratios)}

    # -- hooks ----------------------------------------------------------------------------------

    def _before_update(self, optimizer, args, kwargs) -> None:
        s = self.settings
        step = self.step_of() + 1
        if not self.blocks or not due(step, s.health_every, s.log_every, s.steps):
            self._pending = None
            return
        with torch.no_grad(), few_threads_for(self.parameters):
            params = [[p for p in block.parameters() if p.requires_grad] for block in self.blocks]
            grads = [group_norm([p.grad for p in ps if p.grad is not None]) for ps in params]
            before = [[p.detach().clone() for p in ps] for ps in params]
            weights = [group_norm(b) for b in before]
        self._pending = {"step": step, "params": params, "before": before,
                         "grad": torch.stack(grads), "weight": torch.stack(weights)}

    def _after_update(self, optimizer, args, kwargs) -> None:
        pending = self._pending
        if pending is None or "update" in pending:
            return
        with torch.no_grad(), few_threads_for(self.parameters):
            changes = []
            for ps, before in zip(pending.pop("params"), pending.pop("before"), strict=True):
                diffs = [p.detach() - b for p, b in zip(ps, before, strict=True)]
                changes.append(group_norm(diffs))
        pending["update"] = torch.stack(changes)
