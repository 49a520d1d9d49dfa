"""Deblurring architectures as plain ``nn.Module``s, built by name from a registry.

Every model is called as ``model(left, right)`` on two Bx3xHxW tensors in [0, 1] and
returns the restored Bx3xHxW image (or a small dataclass whose ``image`` field is it).
"""

from dpdeblur.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
