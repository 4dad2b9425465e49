"""micrograd's API (`Value`, `Neuron`, `Layer`, `MLP`, `draw_dot`), backed by float64 torch scalars.

A program that imports `micrograd.engine.Value` gets this `Value`: every value holds a 0-d float64 torch
tensor, every operation is the torch operation, and `backward()` is torch's. So the app shows torch's
graph of a micrograd program with micrograd's numbers: `.data` and `.grad` read as floats, every
intermediate value keeps its gradient (as micrograd's do), and `label=` names a node.

The neural-network classes draw their initial weights from the program's `random` in the order
micrograd's own classes do, so a seeded program starts from the same numbers.

Only the names in each class's `PUBLIC` are reachable from a program.
"""

from __future__ import annotations

import contextlib
import threading

import torch

_active = threading.local()  # the running program's hooks and random stream, per thread


@contextlib.contextmanager
def activated(hooks, rng):
    """Within the block, Values on this thread report to `hooks` and neurons draw from `rng`."""
    previous = getattr(_active, "state", None)
    _active.state = (hooks, rng)
    try:
        yield
    finally:
        _active.state = previous


def _hooks():
    state = getattr(_active, "state", None)
    return state[0] if state else None


def _rng():
    state = getattr(_active, "state", None)
    if state is None:
        import random

        return random
    return state[1]


class Value:
    """A scalar with a gradient: micrograd's Value, computed by torch in float64."""

    PUBLIC = frozenset({"data", "grad", "label", "backward", "relu", "tanh", "exp", "log", "sigmoid", "_op"})

    def __init__(self, data, _children=(), _op="", label=""):
        if isinstance(data, Value):
            data = data.data
        if isinstance(data, torch.Tensor):
            self.t = data
        else:
            self.t = torch.tensor(float(data), dtype=torch.float64, requires_grad=True)
            hooks = _hooks()
            if hooks is not None:
                self.t = hooks.register_leaf(self.t)
        if not self.t.is_leaf:
            self.t.retain_grad()  # micrograd keeps every node's gradient
        self._op = _op
        self.label = label
        if label and _hooks() is not None:
            _hooks().name_value(label, self.t)

    @staticmethod
    def _wrap(other) -> Value:
        return other if isinstance(other, Value) else Value(torch.tensor(float(other), dtype=torch.float64))

    # -- what micrograd's Value shows --
    @property
    def data(self) -> float:
        """The value as a Python float."""
        return float(self.t.detach())

    @data.setter
    def data(self, value) -> None:
        with torch.no_grad():
            self.t.fill_(float(value))

    @property
    def grad(self) -> float:
        """dL/d(this value) after backward (0.0 before)."""
        g = self.t.grad
        return 0.0 if g is None else float(g)

    @grad.setter
    def grad(self, value) -> None:
        if value == 0:
            self.t.grad = None
        else:
            self.t.grad = torch.tensor(float(value), dtype=torch.float64)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name == "label" and value and _hooks() is not None and "t" in self.__dict__:
            _hooks().name_value(value, self.t)

    # -- operations --
    def __add__(self, other):
        other = Value._wrap(other)
        return Value(self.t + other.t, (self, other), "+")

    def __mul__(self, other):
        other = Value._wrap(other)
        return Value(self.t * other.t, (self, other), "*")

    def __pow__(self, other):
        if not isinstance(other, int | float) or isinstance(other, bool):
            raise TypeError("micrograd's ** takes an int or float exponent")
        return Value(self.t**other, (self,), f"**{other}")

    def relu(self):
        """max(0, x)."""
        return Value(torch.relu(self.t), (self,), "ReLU")

    def tanh(self):
        """tanh(x)."""
        return Value(torch.tanh(self.t), (self,), "tanh")

    def exp(self):
        """e^x."""
        return Value(torch.exp(self.t), (self,), "exp")

    def log(self):
        """ln x."""
        return Value(torch.log(self.t), (self,), "log")

    def sigmoid(self):
        """1 / (1 + e^-x)."""
        return Value(torch.sigmoid(self.t), (self,), "sigmoid")

    def backward(self):
        """Backpropagate from this value (torch's engine), filling every value's `.grad`."""
        hooks = _hooks()
        if hooks is not None:
            hooks.backward(self.t, None, False, False, None)
        else:
            self.t.backward()

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1

    def __rtruediv__(self, other):
        return other * self**-1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


class Module:
    """micrograd's nn.Module: parameters() and zero_grad()."""

    PUBLIC = frozenset({"parameters", "zero_grad"})

    def zero_grad(self):
        """Set every parameter's gradient to 0."""
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        """The Values this module learns."""
        return []


class Neuron(Module):
    """One neuron: w·x + b, then ReLU unless nonlin=False (weights uniform in [-1, 1])."""

    PUBLIC = Module.PUBLIC | {"w", "b", "nonlin"}
    def __init__(self, nin, nonlin=True):
        draw = _rng().uniform
        self.w = [Value(draw(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=False)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """nout neurons reading the same inputs."""

    PUBLIC = Module.PUBLIC | {"neurons"}

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of neurons; the last layer is linear."""

    PUBLIC = Module.PUBLIC | {"layers"}

    def __init__(self, nin, nouts):
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


def draw_dot(root, format="svg", rankdir="LR"):  # noqa: A002 -- micrograd's own keyword
    """Show `root`'s graph (in the app, the graph pane shows it); returns None."""
    hooks = _hooks()
    if hooks is not None:
        hooks.show_graph(root.t if isinstance(root, Value) else root)


CLASSES = (Value, Module, Neuron, Layer, MLP)
ENGINE = {"Value": Value}
NN = {"Module": Module, "Neuron": Neuron, "Layer": Layer, "MLP": MLP}
