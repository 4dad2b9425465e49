# after: Karpathy, micrograd lecture, the MLP(3, [4, 4, 1]) trained on four examples with a manual update loop
import random

from micrograd.nn import MLP

random.seed(7)
model = MLP(3, [4, 4, 1])
xs = [[1.0, 2.0, -1.0], [2.5, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]
for step in range(15):
    ypred = [model(x) for x in xs]
    loss = sum([(yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)])
    for p in model.parameters():
        p.grad = 0.0
    loss.backward()
    for p in model.parameters():
        p.data += -0.02 * p.grad
    print(step, loss.data)
