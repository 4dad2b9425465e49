# after: PyTorch tutorial "Automatic Differentiation with torch.autograd", the one-layer network and its loss
import torch

torch.manual_seed(1)
x = torch.ones(4)
y = torch.zeros(2)
w = torch.randn(4, 2, requires_grad=True)
b = torch.randn(2, requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
print(f"Gradient function for z = {z.grad_fn}")
print(f"Gradient function for loss = {loss.grad_fn}")
loss.backward()
print(w.grad)
print(b.grad)
