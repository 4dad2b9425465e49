# after: PyTorch tutorial "A Gentle Introduction to torch.autograd", Exclusion from the DAG (requires_grad flags)
import torch

torch.manual_seed(0)
x = torch.rand(4, 3)
y = torch.rand(4, 3)
z = torch.rand((4, 3), requires_grad=True)
a = x + y
print(f"Does `a` require gradients?: {a.requires_grad}")
b = x + z
print(f"Does `b` require gradients?: {b.requires_grad}")
s = (b * b).sum()
s.backward()
