# after: PyTorch docs examples for torch.eye(n, m), .t() and .double(), in a float64 matrix product
import torch

m = torch.eye(2, 3).double()
w = torch.tensor([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
product = m @ w
sym = product + product.t()
loss = (sym**2).sum()
loss.backward()
print(loss.dtype, w.grad)
