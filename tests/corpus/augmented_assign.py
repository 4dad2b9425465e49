# after: common tutorial pattern, running totals with += on tensors and numbers inside a loop
import torch

a = torch.tensor(1.5, requires_grad=True)
b = torch.tensor(-0.5, requires_grad=True)
c = a * b
c += a
c *= 2
total = 0
for k in range(1, 5):
    total += c * k + b**k
count = 0
count += 3
loss = total / count
loss.backward()
print(loss.item(), a.grad.item(), b.grad.item())
