# after: Karpathy, "Let's build GPT" (Embedding, LayerNorm, GELU, Dropout, CrossEntropyLoss, AdamW), in miniature
import torch
import torch.nn as nn

torch.manual_seed(1337)


class TinyLM(nn.Module):
    def __init__(self, vocab, width):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx):
        x = self.embed(idx)
        x = x + self.drop(self.mlp(self.norm(x)))
        return self.head(x)


model = TinyLM(vocab=7, width=4)
idx = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
targets = torch.tensor([[2, 3, 4, 5], [3, 2, 1, 0]])
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
for step in range(4):
    logits = model(idx)
    loss = criterion(logits.view(-1, 7), targets.view(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(loss.item())
