# after: common tutorial pattern, tuple unpacking of parameters, of function results and in for loops
import torch

w, b = torch.tensor(1.5, requires_grad=True), torch.tensor(-0.5, requires_grad=True)
xs = torch.tensor([0.0, 1.0, 2.0, 3.0])
ys = torch.tensor([1.0, 2.5, 3.5, 5.5])


def forward(x):
    pred = w * x + b
    return pred, pred - ys


pred, err = forward(xs)
lo, hi = err.min(), err.max()
loss = (err**2).mean() + 0.1 * (hi - lo)
for name, p in [("w", w), ("b", b)]:
    print(name, p.item())
loss.backward()
