# after: fastbook chapter 4 (MNIST basics), The MNIST Loss Function and Putting It All Together (torch.where, train_epoch)
import torch

torch.manual_seed(0)


def init_params(size, std=1.0):
    return (torch.randn(size) * std).requires_grad_()


weights = init_params((6, 1))
bias = init_params(1)
train_x = torch.randn(8, 6)
train_y = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0]).unsqueeze(1)


def linear1(xb):
    return xb @ weights + bias


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def calc_grad(xb, yb, model):
    preds = model(xb)
    loss = mnist_loss(preds, yb)
    loss.backward()
    return loss


lr = 1.0
params = weights, bias
for epoch in range(5):
    for xb, yb in [(train_x[:4], train_y[:4]), (train_x[4:], train_y[4:])]:
        calc_grad(xb, yb, linear1)
        for p in params:
            p.data -= p.grad * lr
            p.grad.zero_()
loss = calc_grad(train_x, train_y, linear1)
print(loss.item())
