# after: common tutorial pattern, per-example losses with zip, enumerate, list comprehensions and builtins
import torch

w = torch.tensor([0.3, -0.2], requires_grad=True)
points = [(1.0, 2.0), (-1.0, 0.5), (0.5, -1.5)]
targets = [1.0, -1.0, 0.0]
losses = []
for i, ((a, b), t) in enumerate(zip(points, targets)):
    pred = w[0] * a + w[1] * b
    losses.append((pred - t) ** 2)
    print(i, round(pred.item(), 4))
scaled = [2 * x for x in losses]
biggest = max([x.item() for x in losses])
loss = sum(scaled) / len(scaled) + abs(min(targets))
loss.backward()
print(biggest, w.grad)
