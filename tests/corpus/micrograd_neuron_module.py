# after: micrograd README and demo notebook, micrograd.nn's Neuron and Layer called on a list of numbers
import random

from micrograd.engine import Value
from micrograd.nn import Layer, Neuron

random.seed(3)
unit = Neuron(2)
layer = Layer(2, 3, nonlin=False)
inputs = [Value(0.4), Value(-1.1)]
hidden = layer(inputs)
out = unit(hidden[:2]) + hidden[2]
out.backward()
print(out.data, [p.grad for p in unit.parameters()])
