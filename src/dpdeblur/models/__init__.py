"""Deblurring architectures as plain ``nn.Module``s, built by name from a registry.

Every model is called as ``model(left, right)`` on two Bx3xHxW tensors in [0, 1] and
returns the restored Bx3xHxW image (or a :class:`~dpdeblur.models.output.DeblurOutput`
whose ``image`` field is it). Each registered name carries its facts
(:class:`~dpdeblur.models.registry.ModelInfo`: input multiple, tiling margin, paper,
released-weights format, benchmark set), read with :func:`model_info`.

This layer is plain torch: it imports :mod:`dpdeblur.nn` and :mod:`dpdeblur.errors`,
never data, training, inference or the command line.
"""

from dpdeblur.models.registry import (
    ModelInfo,
    create_model,
    is_model,
    list_models,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "is_model", "list_models", "model_info", "register_model"]
