# after: Karpathy, micrograd lecture, tanh broken into exp, division and subtraction
# (the lecture's Value: label= and .exp(), which PyPI's micrograd 0.1.0 lacks; the reference harness adds them)
from micrograd.engine import Value

x1 = Value(0.8, label="x1")
w1 = Value(-1.2, label="w1")
x2 = Value(2.0, label="x2")
w2 = Value(0.3, label="w2")
b = Value(0.5, label="b")
n = x1 * w1 + x2 * w2 + b
e = (2 * n).exp()
o = (e - 1) / (e + 1)
o.label = "o"
o.backward()
print(o.data, w1.grad, w2.grad, b.grad)
