"""The authors' released weights: one module per release format.

Each format module provides ``NAME`` (the format's name, as the model registry's
``weights_format`` gives it), ``MODEL`` (the registry model its weights load into),
``detect(payload) -> bool`` (is a checkpoint read from disk laid out as this release?) and
``convert(payload, model, path) -> state_dict`` (the release's tensors renamed onto
``model``'s keys, checked to cover the model exactly). :data:`FORMATS` lists them;
:func:`dpdeblur.runs.checkpoints.load_model` detects and converts released files in memory,
and ``dpdeblur-convert`` writes them as ``dpdeblur-weights`` files.

Adding a format: a module here with those four names, listed in :data:`FORMATS`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from dpdeblur.errors import ConfigError
from dpdeblur.runs.releases import dpanet, dpdnet_keras, k3dn, restormer_dp

FORMATS: tuple[ModuleType, ...] = (dpanet, k3dn, dpdnet_keras, restormer_dp)


def detect_release(payload: object) -> ModuleType | None:
    """The release format a checkpoint read from disk is laid out as, if any."""
    return next((fmt for fmt in FORMATS if fmt.detect(payload)), None)


def release_for_model(model: str, path: str | Path | None = None) -> ModuleType:
    """The release format whose weights load into registry model ``model``."""
    for fmt in FORMATS:
        if model == fmt.MODEL:
            return fmt
    known = ", ".join(sorted(fmt.MODEL for fmt in FORMATS))
    raise ConfigError(f"no released weights format for model '{model}'", path, f"pick {known}")


def release_models() -> list[str]:
    """Registry models with a released-weights format (``dpdeblur-convert``'s choices)."""
    return sorted(fmt.MODEL for fmt in FORMATS)
