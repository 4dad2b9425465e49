# after: Karpathy, "The spelled-out intro to neural networks and backpropagation" (micrograd lecture), the manual neuron with tanh
# (the lecture's Value: label= and .tanh(), which PyPI's micrograd 0.1.0 lacks; the reference harness adds them)
from micrograd.engine import Value

x1 = Value(1.5, label="x1")
x2 = Value(-0.5, label="x2")
w1 = Value(-2.0, label="w1")
w2 = Value(0.75, label="w2")
b = Value(4.2, label="b")
x1w1 = x1 * w1
x1w1.label = "x1*w1"
x2w2 = x2 * w2
x2w2.label = "x2*w2"
x1w1x2w2 = x1w1 + x2w2
n = x1w1x2w2 + b
n.label = "n"
o = n.tanh()
o.label = "o"
o.backward()
print(o.data, w1.grad, w2.grad, x1.grad, x2.grad)
