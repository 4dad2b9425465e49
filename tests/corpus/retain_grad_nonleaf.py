# after: PyTorch docs, Tensor.retain_grad and is_leaf (the gradient of an intermediate result)
import torch

x = torch.tensor([1.0, 2.0, -1.0], requires_grad=True)
h = x.exp()
h.retain_grad()
out = (h * x).mean()
out.backward()
print(x.is_leaf, h.is_leaf, h.grad)
print(x.grad)
