# after: fastbook chapter 4 (MNIST basics), An End-to-End SGD Example (params.data -= lr * params.grad.data)
import torch

torch.manual_seed(42)
time = torch.arange(0, 12).float()
speed = torch.randn(12) * 3 + 0.75 * (time - 5.5) ** 2 + 1


def f(t, params):
    a, b, c = params
    return a * (t**2) + (b * t) + c


def mse(preds, targets):
    return ((preds - targets) ** 2).mean()


params = torch.randn(3).requires_grad_()
lr = 1e-4


def apply_step(params, prn=True):
    preds = f(time, params)
    loss = mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    if prn:
        print(loss.item())
    return preds


for i in range(10):
    apply_step(params)
preds = f(time, params)
loss = mse(preds, speed)
loss.backward()
