"""Model registry in the manner of timm: ``@register_model(info=ModelInfo(...))`` on a
factory function, ``create_model(name, **overrides)``, ``list_models()`` and
``model_info(name)``.

Every registered model carries its facts (:class:`ModelInfo`, timm's ``default_cfg``
idea): the size multiple its forward pads H and W to, how far one output pixel reaches
into the input (the margin tiled inference needs, or why there is none), what its size
argument means, the paper it follows, the released-weights format that loads into it,
and whether it is in the main benchmark set. Tiling, the benchmarks and the docs read
these facts instead of dispatching on class names; registering without them raises.

Factories are registered when the module that defines them is imported. The modules are
imported on first use of the registry (not at package import), and a module that fails to
import is reported by name instead of breaking every other model.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from dpdeblur.models.output import DeblurOutput

# Modules that define registered models; imported lazily by _load_all().
MODEL_MODULES = (
    "dpdeblur.models.dpanet",
    "dpdeblur.models.k3dn",
    "dpdeblur.models.dpdnet",
    "dpdeblur.models.restormer",
)

#: A fact of a built model that depends on its constructor arguments, in pixels.
PixelFact = Callable[[nn.Module], int]


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of the package needs to know about a registered model.

    Attributes:
        architecture: the ``nn.Module`` class the factory builds; its constructor
            arguments are what a model config may set.
        paper: short citation and where to find it.
        size_argument: the constructor argument that scales the model (``"width"``: a
            float multiplier of the published channel counts, the same in every model
            that has one; K3DN's is ``"base_channels"``).
        size_meaning: one line on what ``size_argument`` does for this model.
        input_multiple: H and W multiple the forward reflect-pads its input to, as a
            function of the built model (a method of ``architecture``).
        margin: receptive-field radius in pixels of the built model (a method of
            ``architecture``): tiles overlapping by twice it reproduce the whole-image
            output. ``None``: the model has global context.
        global_context: with ``margin=None``, one line on why a tiled output is only an
            approximation of the whole-image one.
        output: ``Tensor`` (the restored image) or :class:`DeblurOutput` (whose
            ``image`` is it).
        weights_format: name of the released-weights format that loads into this model
            (see :mod:`dpdeblur.runs.releases`); ``None`` if there is none.
        main_benchmark: in the set ``dpdeblur-bench all`` measures in every section.
    """

    architecture: type[nn.Module]
    paper: str
    size_argument: str
    size_meaning: str
    input_multiple: PixelFact
    margin: PixelFact | None
    global_context: str | None = None
    output: type = Tensor
    weights_format: str | None = None
    main_benchmark: bool = False

    def __post_init__(self) -> None:
        if (self.margin is None) == (not self.global_context):
            raise ValueError(
                "ModelInfo needs exactly one of margin (a finite receptive field) and "
                "global_context (why tiles are approximate)"
            )
        if self.output not in (Tensor, DeblurOutput):
            raise ValueError(f"output must be Tensor or DeblurOutput, got {self.output!r}")
        if not self.paper or not self.size_meaning:
            raise ValueError("ModelInfo needs the paper and what its size argument means")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    info: ModelInfo


_REGISTRY: dict[str, _Entry] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_loaded = False


def register_model(
    fn: Callable[..., nn.Module] | None = None, *, info: ModelInfo | None = None
) -> Callable:
    """Register a factory under its own name with its :class:`ModelInfo`.

    Used as ``@register_model(info=ModelInfo(...))``; ``fn(**kwargs)`` must return an
    ``nn.Module``. A bare ``@register_model`` (no metadata) raises ``TypeError``.
    """
    if fn is not None or not isinstance(info, ModelInfo):
        name = getattr(fn, "__name__", "a model")
        raise TypeError(f"register {name} with its facts: @register_model(info=ModelInfo(...))")

    def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = _Entry(factory, info)
        return factory

    return register


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


def list_models(pattern: str = "*", main_benchmark: bool | None = None) -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``.

    ``main_benchmark=True`` keeps only the main benchmark set (``False``: only the rest).
    """
    _load_all()
    return sorted(
        name
        for name, entry in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern)
        and (main_benchmark is None or entry.info.main_benchmark == main_benchmark)
    )


def is_model(name: str) -> bool:
    _load_all()
    return name in _REGISTRY


def _entry(name: str) -> _Entry:
    _load_all()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        broken = "; ".join(f"{m} failed to import ({e})" for m, e in _IMPORT_ERRORS.items())
        raise KeyError(
            f"unknown model {name!r}; known models: {known}" + (f". {broken}" if broken else "")
        )
    return _REGISTRY[name]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` registered with model ``name``."""
    return _entry(name).info


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with constructor overrides ``kwargs``."""
    model = _entry(name).factory(**kwargs)
    model.registry_name = name  # recorded in checkpoints so tools can rebuild the model
    return model
