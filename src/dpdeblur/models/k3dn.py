"""K3DN: disparity-aware kernel estimation for dual-pixel defocus deblurring.

Yang, Pan, Liu, Liu, CVPR 2023. The authors released no code; this is the project's own
reading of the paper (spec: ``shared/spec/k3dn.md``; details in ``docs/k3dn.md``).

What is whose:

* The paper's: three modules trained end-to-end with all-in-focus targets only.
  (i) Disparity-aware deblur: a disparity feature map queries a trainable kernel set of
  horizontally symmetric kernels; deblurring in the Fourier domain
  (:mod:`dpdeblur.nn.kernel_deblur`, :mod:`dpdeblur.nn.kernel_set`,
  :mod:`dpdeblur.nn.disparity`). (ii) Reblurring regularisation, training only: the kernel
  is reused to reblur the restored estimate, compared with the inputs. (iii) Sharp-region
  preservation (:mod:`dpdeblur.nn.sharp_region`).
* The known third-party inference code's structure (largest config): inputs ``L, R``
  shifted by -0.5 and concatenated; a 3-level U-Net of width ``w`` (bias-free convs,
  LeakyReLU 0.2): stride-2 conv 6->w + 4 res blocks (1/2), stride-2 conv w->2w + 4 (1/4),
  stride-2 conv 2w->4w + 4 (1/8); 8 deblur blocks at 1/8 on windows of the feature map;
  decoder of transposed convs with concatenated skips (the last skip is the raw 6-channel
  input), 4 res blocks per level, a 3x3 head to 3 channels; output clipped to [-1, 1] and
  shifted back by +0.5. Sharp-region blocks at the three decoder fusions, trained in a
  second stage with the rest frozen.
* Ours:
  - Any H, W: both views are reflect-padded to a multiple of ``8 * window_size`` (the
    window grid at 1/8) and the output is cropped back; never resized. The default window
    is 16 feature pixels (128 image pixels): 128-multiple crops need no padding and DPDD's
    1120x1680 pads to the 1152x1792 the inference code resizes to.
  - The reblur path (spec, part c): in training mode the restored 1/8 features go back
    through the deblur blocks in reverse order (:meth:`DisparityAwareDeblurBlock.reverse`:
    reblur with the same kernels, inverse weights, ``M^-1``) and are decoded by the same
    decoder, with the same skips, into a reblurred image ``B_hat``; the ``reblur`` loss term
    compares it with ``(L + R) / 2`` (:mod:`dpdeblur.training.losses`). In eval mode the reverse
    path is never run.
  - Output: always a :class:`~dpdeblur.models.output.DeblurOutput`; ``reblurred`` is set in
    training mode (when ``reblur=True``) and ``None`` in eval mode.
  - Two-stage recipe hooks: :meth:`K3DN.load_stage1_state_dict` (a checkpoint of the same
    model without sharp-region blocks, e.g. ``k3dn_no_srp``) and
    :meth:`K3DN.freeze_for_stage2` (only the sharp-region blocks stay trainable).
  - Registry defaults: ``k3dn`` (width 48), ``k3dn_light`` (32) and ``k3dn_tiny`` (16) are
    the full model, with sharp-region preservation; ``k3dn_no_srp`` is the stage-1 /
    "base" network. Ablations: ``k3dn_no_sym`` (free kernels), ``k3dn_no_srp``,
    ``k3dn_concat`` (plain view concatenation instead of disparity features); the loss
    without the reblur term is a loss config (``loss=charbonnier``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from dpdeblur.errors import CheckpointError
from dpdeblur.models.output import DeblurOutput
from dpdeblur.models.padding import check_dp_inputs, crop_to, pad_to_multiple
from dpdeblur.models.registry import register_model
from dpdeblur.nn.disparity import ConcatViewFeatures, DisparityFeatureEstimator
from dpdeblur.nn.k3dn_layers import conv_act, res_stack
from dpdeblur.nn.kernel_deblur import DisparityAwareDeblurBlock
from dpdeblur.nn.sharp_region import SharpRegionPreservation

STRIDE = 8  # the deblur stage runs at 1/8 resolution
DISPARITY_MODES = ("cost_volume", "concat")


class K3DN(nn.Module):
    """K3DN on a DP pair; ``model(left, right) -> DeblurOutput``.

    Args:
        width: base width ``w`` of the U-Net (48, 32, 16 for the three sizes).
        num_res: res blocks per encoder / decoder level.
        num_deblur_blocks: disparity-aware deblur blocks at 1/8 resolution.
        kernel_size: odd size of each kernel of the kernel set.
        spectrum_size: spatial grid of each kernel's stored spectrum.
        kernel_set_size: kernels per block; ``None`` means one per channel (``4w``).
        window_size: side, in 1/8-resolution pixels, of the windows that share one
            disparity vector and one set of kernel weights.
        symmetric: kernels are exact horizontal mirrors of themselves (DP constraint).
        disparity: ``"cost_volume"`` (disparity features) or ``"concat"`` (ablation).
        disparity_dim: size of each window's disparity vector.
        disparity_channels: width of the disparity network's view features.
        max_shift: cost volume shifts ``-max_shift .. max_shift`` at 1/8 resolution.
        sharp_region: add the sharp-region preservation blocks at the decoder fusions.
        sharp_region_res: res blocks inside each sharp-region block.
        reblur: compute the reblurred image in training mode.
        spectrum_floor: lowest kernel transfer magnitude; the deblur gain is at most its
            reciprocal.
        logit_bound: bound on the kernel-weight logits (see :class:`KernelQuery`).
        residual_gain: initial value of each deblur block's learnable residual gain.
    """

    def __init__(
        self,
        width: int = 48,
        num_res: int = 4,
        num_deblur_blocks: int = 8,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        kernel_set_size: int | None = None,
        window_size: int = 16,
        symmetric: bool = True,
        disparity: str = "cost_volume",
        disparity_dim: int = 256,
        disparity_channels: int = 32,
        max_shift: int = 3,
        sharp_region: bool = True,
        sharp_region_res: int = 4,
        reblur: bool = True,
        spectrum_floor: float = 0.1,
        logit_bound: float = 3.0,
        residual_gain: float = 0.1,
    ):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"width is K3DN's base channel count (48, 32, 16 for the three sizes), "
                f"a positive integer, got {width!r}"
            )
        if disparity not in DISPARITY_MODES:
            raise ValueError(f"disparity must be one of {DISPARITY_MODES}, got {disparity!r}")
        if window_size < kernel_size:
            raise ValueError(
                f"window_size ({window_size}) must be at least kernel_size ({kernel_size})"
            )
        self.config = {
            "width": width,
            "num_res": num_res,
            "num_deblur_blocks": num_deblur_blocks,
            "kernel_size": kernel_size,
            "spectrum_size": spectrum_size,
            "kernel_set_size": kernel_set_size,
            "window_size": window_size,
            "symmetric": symmetric,
            "disparity": disparity,
            "disparity_dim": disparity_dim,
            "disparity_channels": disparity_channels,
            "max_shift": max_shift,
            "sharp_region": sharp_region,
            "sharp_region_res": sharp_region_res,
            "reblur": reblur,
            "spectrum_floor": spectrum_floor,
            "logit_bound": logit_bound,
            "residual_gain": residual_gain,
        }
        self.window_size = window_size
        self.reblur = reblur
        w, views = width, 6

        # Encoder (inference code): 1/2, 1/4, 1/8.
        self.down = nn.ModuleList(
            conv_act(c_in, c_out, stride=2)
            for c_in, c_out in ((views, w), (w, 2 * w), (2 * w, 4 * w))
        )
        self.encoder = nn.ModuleList(res_stack(c, num_res) for c in (w, 2 * w, 4 * w))

        # Module (i): disparity features and the disparity-aware deblur blocks.
        if disparity == "cost_volume":
            self.disparity = DisparityFeatureEstimator(disparity_dim, disparity_channels, max_shift)
        else:
            self.disparity = ConcatViewFeatures(disparity_dim, disparity_channels)
        self.deblur = nn.ModuleList(
            DisparityAwareDeblurBlock(
                4 * w,
                disparity_dim,
                kernel_set_size,
                kernel_size,
                spectrum_size,
                symmetric,
                spectrum_floor,
                logit_bound,
                residual_gain,
            )
            for _ in range(num_deblur_blocks)
        )

        # Decoder: x2 transposed convs, fusion with a skip, res blocks; head to RGB.
        self.up = nn.ModuleList(
            conv_act(c_in, c_out, 4, stride=2, transpose=True)
            for c_in, c_out in ((4 * w, 2 * w), (4 * w, w), (2 * w, w))
        )
        fusions = ((2 * w, 2 * w), (w, w), (views, w))  # (skip, upsampled) channels
        self.decoder = nn.ModuleList(res_stack(s + u, num_res) for s, u in fusions)
        # Module (iii): sharp-region preservation at each fusion (None: concatenation).
        self.srp = (
            nn.ModuleList(SharpRegionPreservation(s, u, sharp_region_res) for s, u in fusions)
            if sharp_region
            else None
        )
        self.head = conv_act(w + views, 3, act=False)

    # -- the three stages --------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Skips ``[x, 1/2, 1/4]`` and the 1/8 features of the shifted 6-channel input."""
        skips = [x]
        for down, stack in zip(self.down, self.encoder, strict=True):
            skips.append(stack(down(skips[-1])))
        return skips[:-1], skips[-1]

    def deblur_features(self, features: Tensor, style: Tensor) -> Tensor:
        """Module (i) on 1/8 features: the deblur blocks in order."""
        for block in self.deblur:
            features = block(features, style)
        return features

    def reblur_features(self, features: Tensor, style: Tensor) -> Tensor:
        """Module (ii) on restored 1/8 features: the blocks' reverses in reverse order."""
        for block in reversed(self.deblur):
            features = block.reverse(features, style)
        return features

    def decode(self, features: Tensor, skips: list[Tensor]) -> Tensor:
        """Decoder (with module iii if present) and head; the image in [-0.5, 1.5]."""
        for level, (up, stack) in enumerate(zip(self.up, self.decoder, strict=True)):
            skip, upsampled = skips[-1 - level], up(features)
            if self.srp is not None:
                fused = self.srp[level](skip, upsampled)
            else:
                fused = torch.cat([skip, upsampled], dim=1)
            features = stack(fused)
        return torch.clamp(self.head(features), -1.0, 1.0) + 0.5

    def forward(self, left: Tensor, right: Tensor) -> DeblurOutput:
        """Deblur a DP pair (B x 3 x H x W each, values in [0, 1], any H, W)."""
        check_dp_inputs(left, right)
        multiple = STRIDE * self.window_size
        left, size = pad_to_multiple(left, multiple)
        right, _ = pad_to_multiple(right, multiple)
        grid = (left.shape[-2] // multiple, left.shape[-1] // multiple)
        skips, features = self.encode(torch.cat([left, right], dim=1) - 0.5)
        style = self.disparity(left, right, grid)
        restored = self.deblur_features(features, style)
        image = crop_to(self.decode(restored, skips), size)
        reblurred = None
        if self.training and self.reblur:
            reblurred = crop_to(self.decode(self.reblur_features(restored, style), skips), size)
        return DeblurOutput(image=image, reblurred=reblurred)

    # -- introspection and the two-stage recipe ------------------------------------------
    def kernels(self) -> list[Tensor]:
        """Each deblur block's spatial kernels, N x k x k."""
        return [block.kernel_set.kernels() for block in self.deblur]

    def load_stage1_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a stage-1 network (this model without sharp-region blocks) for stage 2.

        Every parameter but those of the sharp-region blocks must be present; the
        sharp-region blocks keep their initialisation (the identity).
        """
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("srp.")}
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        reshaped = sorted(
            k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape
        )
        if missing or unexpected or reshaped:
            raise CheckpointError(
                f"not a stage-1 K3DN of this configuration: {len(missing)} missing, "
                f"{len(unexpected)} unexpected, {len(reshaped)} of another shape "
                f"(first: {(missing + unexpected + reshaped)[0]})",
                fix="train stage 1 with the same sizes and sharp_region=False (k3dn_no_srp)",
            )
        self.load_state_dict(dict(state_dict), strict=False)

    def freeze_for_stage2(self) -> K3DN:
        """Stage 2 of the recipe: only the sharp-region blocks stay trainable."""
        if self.srp is None:
            raise ValueError("freeze_for_stage2 needs sharp_region=True (no blocks to train)")
        self.requires_grad_(False)
        self.srp.requires_grad_(True)
        return self


def _k3dn(overrides: dict, **defaults) -> K3DN:
    return K3DN(**{**defaults, **overrides})


@register_model
def k3dn(**kwargs) -> K3DN:
    """K3DN, width 48, with sharp-region preservation (spec: about 16.1M parameters)."""
    return _k3dn(kwargs, width=48, disparity_dim=256, disparity_channels=32)


@register_model
def k3dn_light(**kwargs) -> K3DN:
    """K3DN, width 32, with sharp-region preservation."""
    return _k3dn(kwargs, width=32, disparity_dim=128, disparity_channels=24)


@register_model
def k3dn_tiny(**kwargs) -> K3DN:
    """K3DN, width 16, with sharp-region preservation."""
    return _k3dn(kwargs, width=16, disparity_dim=64, disparity_channels=16)


@register_model
def k3dn_no_sym(**kwargs) -> K3DN:
    """Ablation: ``k3dn`` with free (not mirror-symmetric) kernels."""
    return k3dn(**{"symmetric": False, **kwargs})


@register_model
def k3dn_no_srp(**kwargs) -> K3DN:
    """Ablation and stage-1 network: ``k3dn`` without sharp-region preservation (~10.6M)."""
    return k3dn(**{"sharp_region": False, **kwargs})


@register_model
def k3dn_concat(**kwargs) -> K3DN:
    """Ablation: ``k3dn`` with the views concatenated instead of disparity features."""
    return k3dn(**{"disparity": "concat", **kwargs})
