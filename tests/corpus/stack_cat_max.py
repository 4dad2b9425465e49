# after: PyTorch docs examples for cat, stack, max(dim=) and softmax, then a hand-written cross-entropy
import torch

torch.manual_seed(3)
logits_a = torch.randn(2, 3, requires_grad=True)
logits_b = torch.randn(1, 3, requires_grad=True)
logits = torch.cat([logits_a, logits_b], dim=0)
best, where = logits.max(dim=1)
probs = torch.softmax(logits, dim=1)
picked = torch.stack([probs[0, 1], probs[1, 0], probs[2, 2]])
loss = -picked.log().mean() + 0.01 * best.sum()
loss.backward()
print(where.tolist(), loss.item())
