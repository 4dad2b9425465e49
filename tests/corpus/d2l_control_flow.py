# after: Dive into Deep Learning, 2.5.4 Gradients and Python Control Flow (while on the norm, if on the sum)
import torch


def f(a):
    b = a * 3
    while b.norm() < 500:
        b = b * 3
    if b.sum() > 0:
        c = b
    else:
        c = 50 * b
    return c


torch.manual_seed(4)
a = torch.randn(size=(), requires_grad=True)
d = f(a)
d.backward()
print(a.grad == d / a)
