# after: PyTorch tutorial "Tensors", Operations on Tensors (indexing and slicing), then backward through them
import torch

t = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], requires_grad=True)
first_row = t[0]
last_column = t[:, -1]
corner = t[1, 2]
tail = t[0, 1:]
loss = first_row.sum() * corner + (last_column**2).sum() + tail.prod()
loss.backward()
print(t.grad.tolist())
print(t[:, :2].shape, t.detach()[1].tolist())
