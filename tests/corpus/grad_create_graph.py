# after: PyTorch docs, torch.autograd.grad (a second derivative with create_graph=True)
import torch

x = torch.tensor(1.3, requires_grad=True)
y = x**3 - 2 * torch.sin(x)
(dy,) = torch.autograd.grad(y, x, create_graph=True)
(d2y,) = torch.autograd.grad(dy, x, retain_graph=True)
print(dy.item(), d2y.item())
dy.backward()
print(x.grad)
