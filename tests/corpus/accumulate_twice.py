# after: PyTorch docs, Autograd mechanics / tutorials on gradient accumulation (backward twice with retain_graph)
import torch

w = torch.tensor([0.5, -1.0], requires_grad=True)
x = torch.tensor([2.0, 3.0])
loss = (w * x).sum() ** 2
loss.backward(retain_graph=True)
print(w.grad)
loss.backward()
print(w.grad)
