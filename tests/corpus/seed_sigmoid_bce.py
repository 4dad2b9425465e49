# after: the seed's example program, a sigmoid neuron with binary cross-entropy (torch.autograd.grad, then backward)
import torch
import torch.nn.functional as F

x = torch.tensor([1.1])
y = torch.tensor([1.0])
w = torch.tensor([2.2], requires_grad=True)
b = torch.tensor([0.0], requires_grad=True)
z = x * w + b
a = torch.sigmoid(z)
loss = F.binary_cross_entropy(a, y)
dw, db = torch.autograd.grad(loss, [w, b], retain_graph=True)
print(f"dL/dw = {dw.item():.4f}, dL/db = {db.item():.4f}")
loss.backward()
print(w.grad, b.grad)
