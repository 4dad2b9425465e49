# after: PyTorch docs examples for torch.where, clamp, norm and ones_like, composed into one loss
import torch

v = torch.tensor([-2.0, -0.5, 0.25, 1.5, 3.0], requires_grad=True)
clipped = v.clamp(min=-1.0, max=2.0)
mask = torch.where(v > 0, v, torch.zeros_like(v))
ones = torch.ones_like(v)
loss = clipped.norm() + (mask * ones).sum() + torch.clamp(v, max=0.0).abs().sum()
loss.backward()
print(v.grad)
