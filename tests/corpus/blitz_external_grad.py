# after: PyTorch tutorial "A Gentle Introduction to torch.autograd", Differentiation in Autograd
import torch

a = torch.tensor([1.5, -2.0, 0.5], requires_grad=True)
b = torch.tensor([4.0, 1.0, -3.0], requires_grad=True)
Q = 3 * a**3 - b**2
external_grad = torch.tensor([1.0, 1.0, 1.0])
Q.backward(gradient=external_grad)
print(9 * a**2 == a.grad)
print(-2 * b == b.grad)
