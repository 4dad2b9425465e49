# after: Raschka, "Build a Large Language Model (From Scratch)", Appendix A.3-A.4 (logistic regression, grad, backward)
import torch
import torch.nn.functional as F
from torch.autograd import grad

y = torch.tensor([0.0])
x1 = torch.tensor([0.7])
w1 = torch.tensor([-1.3], requires_grad=True)
b = torch.tensor([0.4], requires_grad=True)
z = x1 * w1 + b
a = torch.sigmoid(z)
loss = F.binary_cross_entropy(a, y)
grad_L_w1 = grad(loss, w1, retain_graph=True)
grad_L_b = grad(loss, b, retain_graph=True)
print(grad_L_w1)
print(grad_L_b)
loss.backward()
print(w1.grad)
print(b.grad)
