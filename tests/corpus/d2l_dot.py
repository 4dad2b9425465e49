# after: Dive into Deep Learning, 2.5 Automatic Differentiation, 2.5.1 A Simple Function
import torch

x = torch.arange(5.0)
x.requires_grad_(True)
print(x.grad)
y = 3 * torch.dot(x, x)
y.backward()
print(x.grad)
print(x.grad == 6 * x)
x.grad.zero_()
y = x.sum()
y.backward()
print(x.grad)
