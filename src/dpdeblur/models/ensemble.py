"""Self-ensemble over the flips that keep a dual-pixel pair valid (test-time augmentation).

A DP pair stays a DP pair under two flips only:

- a vertical flip of both views (disparity is horizontal, so nothing changes), and
- a horizontal flip that also swaps the views: mirrored, the left view's half-aperture blur
  becomes the right view's, and a point's disparity changes sign exactly as the swap says.

Transposes and 90-degree turns, the other half of the usual x8 self-ensemble of
super-resolution (Lim et al., EDSR, 2017), would turn horizontal disparity into vertical
disparity that no DP sensor produces, so they are left out. ``FlipEnsemble`` runs the model
on the four valid versions of a pair, undoes each flip on the restored image and averages
them: four times the compute for a prediction that is exactly flip-equivariant.
"""

from __future__ import annotations

from torch import Tensor, nn

from dpdeblur.models.output import output_image

#: (flip up-down, flip left-right and swap the views) for each member of the ensemble.
DP_FLIPS: tuple[tuple[bool, bool], ...] = (
    (False, False),
    (True, False),
    (False, True),
    (True, True),
)


def flip_pair(left: Tensor, right: Tensor, vertical: bool, mirror: bool) -> tuple[Tensor, Tensor]:
    """The pair flipped up-down (``vertical``) and/or mirrored with its views swapped."""
    if vertical:
        left, right = left.flip(-2), right.flip(-2)
    if mirror:
        left, right = right.flip(-1), left.flip(-1)
    return left, right


def unflip_image(image: Tensor, vertical: bool, mirror: bool) -> Tensor:
    """Undo :func:`flip_pair` on a restored image (each flip is its own inverse)."""
    if mirror:
        image = image.flip(-1)
    if vertical:
        image = image.flip(-2)
    return image


class FlipEnsemble(nn.Module):
    """``model`` averaged over the four DP-valid flips of its input pair.

    Returns the restored image only (auxiliary outputs such as K3DN's reblurred estimate
    are training-time terms and are not averaged). ``flips`` picks a subset of
    :data:`DP_FLIPS`; the weights are those of ``model`` (``state_dict`` keys are
    ``model.*``), so wrap a loaded model rather than saving the wrapper.
    """

    def __init__(self, model: nn.Module, flips: tuple[tuple[bool, bool], ...] = DP_FLIPS):
        super().__init__()
        if not flips:
            raise ValueError("FlipEnsemble needs at least one flip")
        self.model = model
        self.flips = tuple(flips)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        total = None
        for vertical, mirror in self.flips:
            flipped = flip_pair(left, right, vertical, mirror)
            image = unflip_image(output_image(self.model(*flipped)), vertical, mirror)
            total = image if total is None else total + image
        return total / len(self.flips)
