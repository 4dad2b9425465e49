# after: PyTorch tutorial "Automatic Differentiation with torch.autograd", Disabling Gradient Tracking
import torch
import torch.nn.functional as F

torch.manual_seed(2)
x = torch.ones(3)
y = torch.tensor([0.0, 1.0])
w = torch.randn(3, 2, requires_grad=True)
b = torch.randn(2, requires_grad=True)
z = torch.matmul(x, w) + b
print(z.requires_grad)
with torch.no_grad():
    z = torch.matmul(x, w) + b
print(z.requires_grad)
z = torch.matmul(x, w) + b
z_det = z.detach()
print(z_det.requires_grad)
loss = F.binary_cross_entropy_with_logits(z, y) + (z_det * z).sum()
loss.backward()
print(w.grad, b.grad)
