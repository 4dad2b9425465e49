# after: micrograd test/test_engine.py, test_more_ops (+=, relu, pow, division by and of a Value)
from micrograd.engine import Value

a = Value(-2.0)
b = Value(3.5)
c = a + b
d = a * b + b**3
c += c + 1
c += 1 + c + (-a)
d += d * 2 + (b + a).relu()
d += 3 * d + (b - a).relu()
e = c - d
f = e**2
g = f / 2.0
g += 10.0 / f
g.backward()
print(g.data, a.grad, b.grad)
