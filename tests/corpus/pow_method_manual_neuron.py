# after: common tutorial pattern, a manual sigmoid neuron with .pow, .exp, .relu and .tanh methods
import torch

x = torch.tensor([0.5, -1.5, 2.0])
w = torch.tensor([0.1, 0.4, -0.3], requires_grad=True)
b = torch.tensor(0.2, requires_grad=True)
z = (w * x).sum() + b
s = 1 / (1 + (-z).exp())
r = z.relu() + z.tanh()
loss = (s - 1).pow(2) + 0.5 * r
loss.backward()
print(f"loss={loss.item():.6f} dw={w.grad.tolist()} db={b.grad.item():.6f}")
