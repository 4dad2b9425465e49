# after: PyTorch tutorial "Optimizing Model Parameters" (a training loop with optim.Adam, MSELoss, .item())
import torch
from torch import nn, optim

torch.manual_seed(5)
xs = torch.randn(16, 2)
ys = xs @ torch.tensor([[2.0], [-1.0]]) + 0.5
model = nn.Linear(2, 1)
loss_fn = nn.MSELoss()
optimizer = optim.Adam(model.parameters(), lr=0.05)
for step in range(50):
    pred = model(xs)
    loss = loss_fn(pred, ys)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 10 == 0:
        print(f"step {step:2d}  loss {loss.item():.5f}")
print(model.weight.tolist(), model.bias.tolist())
