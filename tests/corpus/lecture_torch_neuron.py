# after: Karpathy, micrograd lecture, "doing the same thing in PyTorch" (Tensor([...]).double(), tanh)
import torch

x1 = torch.Tensor([1.5]).double()
x1.requires_grad = True
x2 = torch.Tensor([-0.5]).double()
x2.requires_grad = True
w1 = torch.Tensor([-2.0]).double()
w1.requires_grad = True
w2 = torch.Tensor([0.75]).double()
w2.requires_grad = True
b = torch.Tensor([4.2]).double()
b.requires_grad = True
n = x1 * w1 + x2 * w2 + b
o = torch.tanh(n)
print(o.data.item())
o.backward()
print("x1", x1.grad.item())
print("w1", w1.grad.item())
