# after: micrograd README, "Example usage" (Value arithmetic, relu, +=, backward, .data and .grad)
from micrograd.engine import Value

p = Value(-3.0)
q = Value(1.5)
r = p + q
s = p * q + q**2
r += r + 2
r += 2 + r + (-p)
s += s * 3 + (q + p).relu()
s += 2 * s + (q - p).relu()
t = r - s
u = t**2
v = u / 4.0
v += 5.0 / u
print(f"{v.data:.4f}")
v.backward()
print(f"{p.grad:.4f}")
print(f"{q.grad:.4f}")
