"""Model registry in the manner of timm: ``@register_model`` on a factory function,
``create_model(name, **overrides)`` and ``list_models()``.

Factories are registered when the module that defines them is imported. The modules are
imported on first use of the registry (not at package import), and a module that fails to
import is reported by name instead of breaking every other model.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable

from torch import nn

# Modules that define registered models; imported lazily by _load_all().
MODEL_MODULES = (
    "dpdeblur.models.dpanet",
    "dpdeblur.models.k3dn",
    "dpdeblur.models.dpdnet",
)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_loaded = False


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name; ``fn(**kwargs)`` must return an ``nn.Module``."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"model name {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                _IMPORT_ERRORS[module] = f"{type(err).__name__}: {err}"
        except Exception as err:
            _IMPORT_ERRORS[module] = f"{type(err).__name__}: {err}"
    _loaded = True


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``."""
    _load_all()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    _load_all()
    return name in _REGISTRY


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with constructor overrides ``kwargs``."""
    _load_all()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        broken = "; ".join(f"{m} failed to import ({e})" for m, e in _IMPORT_ERRORS.items())
        raise KeyError(
            f"unknown model {name!r}; known models: {known}" + (f". {broken}" if broken else "")
        )
    model = _REGISTRY[name](**kwargs)
    model.registry_name = name  # recorded in checkpoints so tools can rebuild the model
    return model
