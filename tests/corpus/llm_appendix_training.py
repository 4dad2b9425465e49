# after: Raschka, "Build a Large Language Model (From Scratch)", Appendix A.7 (a training loop with SGD and cross_entropy)
import torch
import torch.nn.functional as F


class NeuralNetwork(torch.nn.Module):
    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(num_inputs, 6),
            torch.nn.ReLU(),
            torch.nn.Linear(6, 4),
            torch.nn.ReLU(),
            torch.nn.Linear(4, num_outputs),
        )

    def forward(self, x):
        return self.layers(x)


X_train = torch.tensor([[-1.0, 2.5], [-0.8, 2.0], [-0.4, 1.6], [2.1, -1.2], [2.6, -1.5]])
y_train = torch.tensor([0, 0, 0, 1, 1])
torch.manual_seed(123)
model = NeuralNetwork(num_inputs=2, num_outputs=2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
num_epochs = 3
for epoch in range(num_epochs):
    model.train()
    logits = model(X_train)
    loss = F.cross_entropy(logits, y_train)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"Epoch: {epoch + 1:03d}/{num_epochs:03d} | Train Loss: {loss:.2f}")
model.eval()
with torch.no_grad():
    predictions = torch.argmax(model(X_train), dim=1)
print((predictions == y_train).sum().item() / len(y_train))
