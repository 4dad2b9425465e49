# after: Dive into Deep Learning, 2.5.3 Detaching Computation
import torch

x = torch.arange(4.0)
x.requires_grad_(True)
y = x * x
u = y.detach()
z = u * x
z.sum().backward()
print(x.grad == u)
x.grad.zero_()
y.sum().backward()
print(x.grad == 2 * x)
