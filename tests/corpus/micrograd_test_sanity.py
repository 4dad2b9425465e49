# after: micrograd test/test_engine.py, test_sanity_check (relu and products of one Value, backward)
from micrograd.engine import Value

x = Value(-2.5)
z = 3 * x + 1 + x
q = z.relu() + z * x
h = (z * z).relu()
y = h + q + q * x
y.backward()
print(y.data, x.grad)
