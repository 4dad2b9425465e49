# after: Raschka, "Build a Large Language Model (From Scratch)", Appendix A.5 (a NeuralNetwork with Sequential)
import torch


class NeuralNetwork(torch.nn.Module):
    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(num_inputs, 12),
            torch.nn.ReLU(),
            torch.nn.Linear(12, 8),
            torch.nn.ReLU(),
            torch.nn.Linear(8, num_outputs),
        )

    def forward(self, x):
        logits = self.layers(x)
        return logits


torch.manual_seed(123)
model = NeuralNetwork(20, 3)
num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
print("Total number of trainable model parameters:", num_params)
print(model.layers[0].weight.shape)
X = torch.rand((1, 20))
with torch.no_grad():
    out = torch.softmax(model(X), dim=1)
print(out)
out = model(X)
score = out.sum()
score.backward()
