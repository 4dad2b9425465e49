"""Per-layer health of a small MLP while it trains: what shows why a network trains well or badly.

For each Linear layer (fc1, fc2, ...):
    grad_norms     the L2 norm of the layer's gradient (weight and bias together) before the step
    update_ratios  |Δw| / |w| over the optimizer step: the change of the layer's weight and bias over
                   their size before it. About 1e-3 is the usual guide (GUIDE_RATIO): far above, the
                   steps are too large for the weights; far below, the layer hardly learns.
For each hidden activation (sigmoid1, relu2, ...), over the batch the step trained on:
    act_mean, act_std   the mean and spread of its outputs
    saturated           Sigmoid and Tanh: the share of outputs whose local derivative is below 6 % of
                        its peak (|tanh| > 0.97, as in Karpathy's makemore; sigmoid below 0.0153 or
                        above 0.9847): almost no gradient passes there. None for other activations.
    dead                ReLU: the share of units that output 0 for every sample of the batch: they
                        pass no gradient back, so nothing can revive them. None for other activations.

A value that is not finite is None. `LayerProbe` measures them on the steps the caller asks for;
`lr_range_test` sweeps the learning rate on a copy of a model (Smith 2015; fastai's lr_find).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from explorer.core.gpt.runs import ema
from explorer.core.mlp.network import (
    NetSpec,
    build_model,
    layer_names,
    make_loss,
    make_optimizer,
    targets_for,
)
from explorer.core.mlp.spec import HEALTH_KEYS  # noqa: F401 - re-exported (its old home)

GUIDE_RATIO = 1e-3
SATURATION = {"tanh": 0.97, "sigmoid": 0.0153}  # |a| above / min(a, 1 - a) below: derivative < 6 % of peak
LR_RANGE = (1e-5, 10.0)  # the toy lr range test's sweep (the form's learning rate goes up to 10)


def finite_or_none(value: float | None) -> float | None:
    """The value as a float, or None when it is missing, NaN or infinite."""
    return float(value) if value is not None and math.isfinite(value) else None


def saturated_share(kind: str, out: torch.Tensor) -> float | None:
    """Share of `out`'s elements in the flat tails of a Sigmoid or Tanh; None for other activations."""
    if kind == "tanh":
        return float((out.abs() > SATURATION["tanh"]).float().mean())
    if kind == "sigmoid":
        return float((torch.minimum(out, 1 - out) < SATURATION["sigmoid"]).float().mean())
    return None


def dead_share(kind: str, out: torch.Tensor) -> float | None:
    """ReLU: the share of units (columns of `out`, shape (batch, units)) that are 0 for every sample."""
    if kind != "relu":
        return None
    return float((out <= 0).all(dim=0).float().mean())


def layer_norm(params: list[torch.Tensor]) -> float:
    """The L2 norm of several tensors taken as one vector."""
    return float(torch.sqrt(sum((p.double() ** 2).sum() for p in params)))


def health_names(spec: NetSpec) -> tuple[list[str], list[str]]:
    """(Linear layer names, hidden activation names) of the model `spec` builds, as the probe orders them."""
    names = layer_names(spec)
    linears = [name for name, kind in names if kind == "Linear"]
    hidden = [name for name, kind in names if kind != "Linear" and layer_index(name) <= len(spec.hidden)]
    return linears, hidden


def layer_index(name: str) -> int:
    """The number a child's name ends with: 2 for "fc2" or "relu2" (layers are numbered from 1)."""
    digits = name[len(name.rstrip("0123456789")):]
    return int(digits) if digits else 0


class LayerProbe:
    """Measures a Sequential MLP's per-layer health on chosen steps.

        probe = LayerProbe(model)
        with probe.watch(measure):            # the forward of the step (activations captured)
            loss = loss_fn(model(x), y)
        loss.backward()
        probe.before_update(measure)          # gradients and weights before the step
        optimizer.step()
        probe.after_update(measure)           # the change the step made
        fields = probe.fields()               # {} unless measured
    """

    def __init__(self, model: nn.Module) -> None:
        self.linears = [(name, m) for name, m in model.named_children() if isinstance(m, nn.Linear)]
        kinds = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu"}
        # The hidden activations only: the output's own activation belongs to the loss.
        n_hidden = len(self.linears) - 1
        self.activations = [(name, m, kinds.get(type(m), "other")) for name, m in model.named_children()
                            if not isinstance(m, nn.Linear) and layer_index(name) <= n_hidden]
        self._outputs: dict[str, torch.Tensor] = {}
        self._before: list[list[torch.Tensor]] | None = None
        self._fields: dict = {}

    @property
    def layer_names(self) -> list[str]:
        """The Linear layers measured, in order."""
        return [name for name, _ in self.linears]

    @property
    def activation_names(self) -> list[str]:
        """The hidden activations measured, in order."""
        return [name for name, _, _ in self.activations]

    def watch(self, measure: bool):
        """A context manager around the step's forward pass: captures the activations when measuring."""
        return _Capture(self, measure)

    def before_update(self, measure: bool) -> None:
        """After backward, before the optimizer step: the gradient norms and a copy of the weights."""
        self._fields = {}
        if not measure:
            self._before = None
            return
        grads = []
        for _, layer in self.linears:
            gs = [p.grad for p in layer.parameters() if p.grad is not None]
            grads.append(finite_or_none(layer_norm(gs)) if gs else None)
        self._before = [[p.detach().clone() for p in layer.parameters()] for _, layer in self.linears]
        self._fields["grad_norms"] = grads
        means, stds, sats, deads = [], [], [], []
        for name, _, kind in self.activations:
            out = self._outputs.get(name)
            if out is None:
                means.append(None), stds.append(None), sats.append(None), deads.append(None)
                continue
            means.append(finite_or_none(float(out.mean())))
            stds.append(finite_or_none(float(out.std())) if out.numel() > 1 else None)
            sats.append(saturated_share(kind, out))
            deads.append(dead_share(kind, out.reshape(out.shape[0], -1)))
        self._outputs = {}
        self._fields.update(act_mean=means, act_std=stds, saturated=sats, dead=deads)

    def after_update(self, measure: bool) -> None:
        """After the optimizer step: the update-to-weight ratio of each layer."""
        if not measure or self._before is None:
            return
        ratios = []
        with torch.no_grad():
            for (_, layer), before in zip(self.linears, self._before, strict=True):
                change = layer_norm([p.detach() - b for p, b in zip(layer.parameters(), before, strict=True)])
                size = layer_norm(before)
                ratios.append(finite_or_none(change / size) if size > 0 else None)
        self._before = None
        self._fields["update_ratios"] = ratios

    def fields(self) -> dict:
        """The measured step's figures ({} when it was not measured), each a list in layer order."""
        fields, self._fields = self._fields, {}
        return fields if "update_ratios" in fields else {}


class _Capture:
    def __init__(self, probe: LayerProbe, measure: bool) -> None:
        self.probe, self.measure, self.handles = probe, measure, []

    def __enter__(self):
        if self.measure:
            outputs = self.probe._outputs
            for name, module, _ in self.probe.activations:
                def keep(_m, _inputs, out, name=name):
                    outputs[name] = out.detach()
                self.handles.append(module.register_forward_hook(keep))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False


# ---------------------------------------------------------------------------------------------------
# Learning-rate range test
# ---------------------------------------------------------------------------------------------------


@dataclass
class LRTest:
    """A learning-rate range test's curve and its suggestion."""

    lrs: np.ndarray  # the learning rate of each step (exponential)
    losses: np.ndarray  # the training loss of each step, NaN where it was not finite
    smoothed: np.ndarray  # the debiased moving average the suggestion is read from
    suggested: float | None  # the lr where the smoothed loss falls fastest, None when it never falls
    stopped_early: bool  # the loss diverged (above 4x its minimum, or not finite) before the last lr


def lr_range_test(model: nn.Module, make_optimizer: Callable[[nn.Module, float], torch.optim.Optimizer],
                  loss_of: Callable[[nn.Module, int], torch.Tensor], start: float = 1e-5, end: float = 10.0,
                  steps: int = 100, progress: Callable[[int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> LRTest | None:
    """Train a deep copy of `model` for `steps` steps with lr growing exponentially from `start` to `end`.

    `loss_of(model, step)` gives the loss of step `step`'s batch; the optimizer comes from
    `make_optimizer(model, lr)`. The model itself is never touched. Stops when the loss diverges.
    Returns None when `cancelled()` turned true.
    """
    trial = copy.deepcopy(model)
    trial.train()
    optimizer = make_optimizer(trial, start)
    factor = (end / start) ** (1.0 / max(1, steps - 1))
    lrs, losses = [], []
    best = math.inf
    stopped = False
    for i in range(steps):
        if cancelled is not None and cancelled():
            return None
        lr = start * factor**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(trial, i)
        value = float(loss.detach())
        lrs.append(lr)
        losses.append(value if math.isfinite(value) else math.nan)
        if not math.isfinite(value) or value > 4 * best:
            stopped = i < steps - 1
            break
        best = min(best, value)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(i + 1)
    lrs_a, losses_a = np.array(lrs), np.array(losses)
    smoothed = ema(losses_a, 0.9)
    return LRTest(lrs_a, losses_a, smoothed, suggest_lr(lrs_a, smoothed), stopped)


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The lr where the smoothed loss falls fastest against log(lr), up to its minimum (Smith's rule of
    thumb: train at a rate where the loss still falls steeply, well before it turns up)."""
    finite = np.isfinite(smoothed)
    if finite.sum() < 3:
        return None
    upto = int(np.nanargmin(np.where(finite, smoothed, np.inf))) + 1
    if upto < 3:
        return None
    slope = np.gradient(smoothed[:upto], np.log(lrs[:upto]))
    if not np.isfinite(slope).any() or np.nanmin(slope) >= 0:
        return None
    return float(lrs[int(np.nanargmin(slope))])


def toy_lr_test(spec: NetSpec, data, steps: int = 100, progress=None, cancelled=None) -> LRTest | None:
    """The lr range test of `spec` on a toy dataset's train split (mini-batches in a seeded order), from a
    copy of the spec's starting weights (the weights Train starts from), over LR_RANGE."""
    model = build_model(spec)
    x, y = data.x_train, targets_for(spec, data.y_train)
    loss_fn = make_loss(spec)
    batch = min(spec.batch_size, len(x))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(spec.seed))

    def loss_of(m: nn.Module, i: int) -> torch.Tensor:
        start = (i * batch) % max(1, len(x) - batch + 1)
        idx = order[start:start + batch]
        return loss_fn(m(x[idx]), y[idx])

    def optimizer(m: nn.Module, lr: float) -> torch.optim.Optimizer:
        return make_optimizer(NetSpec.from_dict({**spec.to_dict(), "lr": lr}), m)

    return lr_range_test(model, optimizer, loss_of, *LR_RANGE, steps=steps, progress=progress,
                         cancelled=cancelled)
