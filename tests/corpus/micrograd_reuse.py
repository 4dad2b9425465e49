# after: Karpathy, micrograd lecture, the bug of a node used twice (gradients must accumulate)
from micrograd.engine import Value

a = Value(-1.5)
b = a + a
c = a * a + b
c.backward()
print(a.grad)
