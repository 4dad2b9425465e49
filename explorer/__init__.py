"""Autograd Explorer: see what PyTorch autograd really does, node by node."""

__version__ = "0.1.0"
