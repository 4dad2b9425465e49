# after: fastbook chapter 4 (MNIST basics), Calculating Gradients for one number (tensor(3.).requires_grad_())
from torch import tensor


def f(x):
    return x**2


xt = tensor(4.0).requires_grad_()
yt = f(xt)
yt.backward()
print(xt.grad)
