# after: Dive into Deep Learning, 2.5.2 Backward for Non-Scalar Variables (backward with gradient=)
import torch

x = torch.arange(4.0, requires_grad=True)
y = x * x
y.backward(gradient=torch.ones(len(y)))
print(x.grad)
x.grad.zero_()
y = x * x * x
y.sum().backward()
print(x.grad)
