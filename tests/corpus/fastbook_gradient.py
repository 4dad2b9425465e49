# after: fastbook chapter 4 (MNIST basics), Calculating Gradients (requires_grad_, f(x) = x**2)
from torch import tensor


def f(x):
    return (x**2).sum()


xt = tensor([2.0, -5.0, 8.0]).requires_grad_()
yt = f(xt)
print(yt)
yt.backward()
print(xt.grad)
