# after: PyTorch tutorial "Automatic Differentiation with torch.autograd", Tensor Gradients and Jacobian Products
import torch

inp = torch.eye(3, 4, requires_grad=True)
out = (inp + 2).pow(2).t()
out.backward(torch.ones_like(out), retain_graph=True)
print(f"First call\n{inp.grad}")
out.backward(torch.ones_like(out), retain_graph=True)
print(f"\nSecond call\n{inp.grad}")
inp.grad.zero_()
out.backward(torch.ones_like(out), retain_graph=True)
print(f"\nCall after zeroing gradients\n{inp.grad}")
