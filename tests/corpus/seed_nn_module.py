# after: the seed's example program, a 10 -> 5 -> 1 nn.Module trained with BCELoss and optim.SGD
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 5)
        self.act = nn.ReLU()
        self.out = nn.Linear(5, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.out(self.act(self.hidden(x))))


model = TinyNet()
inputs = torch.randn(8, 10)
targets = torch.randint(0, 2, (8, 1)).float()
criterion = nn.BCELoss()
optimizer = optim.SGD(model.parameters(), lr=0.1)
for step in range(5):
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
    print(step, loss.item())
