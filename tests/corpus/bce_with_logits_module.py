# after: PyTorch docs, nn.BCEWithLogitsLoss and nn.Tanh in a two-layer classifier (one step, no optimizer)
import torch
import torch.nn as nn

torch.manual_seed(11)
net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
x = torch.randn(5, 3)
y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
loss_fn = nn.BCEWithLogitsLoss()
loss = loss_fn(net(x), y)
loss.backward()
for name, param in net.named_parameters():
    print(name, tuple(param.grad.shape))
