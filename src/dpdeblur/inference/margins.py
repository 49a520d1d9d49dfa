"""What tiled inference needs to know about a model: its alignment and its margin.

Tiled inference gives the whole-image result exactly when, for every pixel a tile
contributes, everything that pixel depends on lies inside the tile and is computed as in
the whole image. Two conditions make that so:

- *alignment*: tile origins are multiples of the model's input multiple (the stride
  product its forward pads to), so every pooling / strided window sits where it sits in
  the whole image, and a tile that ends at the image's bottom/right edge gets the same
  reflect padding;
- *margin*: a tile's output is used only at least ``margin`` pixels away from its inner
  edges, where ``margin`` is the radius of the model's receptive field (zero padding at a
  tile edge changes exactly the outputs whose receptive field crosses it).

Both facts come from the model's registry entry (:func:`dpdeblur.models.model_info`): the
receptive field is computed by interval arithmetic over the model's layers
(:mod:`dpdeblur.models.receptive_field`). Models with global context have no finite
margin; their entry says why, and their tiled output is an approximation whose quality
grows with the tile and the overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from dpdeblur.errors import ConfigError
from dpdeblur.models import model_info
from dpdeblur.models.ensemble import FlipEnsemble
from dpdeblur.models.release_protocol import InputBits, ReleaseProtocol


@dataclass(frozen=True)
class TilingSpec:
    """What tiling needs to know about a model.

    Attributes:
        multiple: tile origins (and inner tile sizes) are multiples of this.
        margin: receptive-field radius in pixels; ``None`` when the model has global context.
        reason: one line on where the figures come from.
    """

    multiple: int
    margin: int | None
    reason: str

    @property
    def exact_overlap(self) -> int | None:
        """Smallest overlap (a multiple of ``multiple``) that reproduces the whole image."""
        if self.margin is None:
            return None
        return round_up(2 * self.margin, self.multiple)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def tiling_spec(model: nn.Module) -> TilingSpec:
    """The :class:`TilingSpec` of a model built by :func:`dpdeblur.models.create_model`
    (or a :class:`~dpdeblur.models.ensemble.FlipEnsemble` of one: flips change neither
    the receptive field nor the alignment)."""
    if isinstance(model, FlipEnsemble):
        return tiling_spec(model.model)
    if isinstance(model, ReleaseProtocol) and model.resizes:
        return TilingSpec(
            1, None, f"the {model.protocol} release protocol resizes whole images: never tiled"
        )
    if isinstance(model, ReleaseProtocol | InputBits):  # pixel-wise quantisation only
        return tiling_spec(model.model)
    name = getattr(model, "registry_name", None)
    if name is None:
        raise ConfigError(
            f"{type(model).__name__} was not built by the model registry, so its input "
            "multiple and receptive field are unknown",
            fix="build it with dpdeblur.models.create_model(name, ...)",
        )
    info = model_info(name)
    multiple = int(info.input_multiple(model))
    if info.margin is None:
        return TilingSpec(multiple, None, f"{name}: {info.global_context}")
    return TilingSpec(
        multiple,
        int(info.margin(model)),
        f"{name}: receptive field computed from its layers",
    )
