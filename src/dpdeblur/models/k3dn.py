"""K3DN: disparity-aware kernel estimation for dual-pixel defocus deblurring.

Yang, Pan, Liu, Liu, CVPR 2023. The authors released no code. ``k3dn`` computes the network
of the only public K3DN code, a third-party inference copy that ships a checkpoint (its
state dict loads strictly into ``create_model("k3dn")``: the same 288 keys, shapes and
order); everything else is marked as ours. Sources and the full table of what is whose:
``docs/k3dn.md``.

What is whose:

* The paper's: three modules trained end-to-end with all-in-focus targets only.
  (i) Disparity-aware deblur: a disparity feature map queries a trainable kernel set of
  horizontally symmetric kernels (:mod:`dpdeblur.nn.disparity`,
  :mod:`dpdeblur.nn.kernel_deblur`, :mod:`dpdeblur.nn.kernel_set`). (ii) Reblurring
  regularisation, training only: the kernels reblur an all-in-focus image, compared with
  the input. (iii) Sharp-region preservation (:mod:`dpdeblur.nn.sharp_region`).
* The public code's network (``k3dn``, 16,099,350 parameters; without the sharp-region
  blocks ``k3dn_no_srp``, 10,556,754). The views ``L' = L - 0.5``, ``R' = R - 0.5`` are
  concatenated, ``x`` (6 channels). Encoder (``feat_extract.0-2``, ``Encoder.0-2``):
  stride-2 conv 6->w, LeakyReLU, 4 residual blocks (1/2); the same w->2w (1/4) and
  2w->4w (1/8), bias-free, w = 48. The 1/8 features are folded into windows of 18x14
  feature pixels (a ``p1 x p2`` grid, window ``n = b p1 p2 + i p2 + j``); the disparity
  branch (``disp``) gives one vector per window from ``L', R'``; 8 deblur blocks
  (``deblur.0-7``) run in order on the windows, each with the same vectors; the windows
  are unfolded. Decoder: transposed conv 4w->2w (``feat_extract.3``), sharp-region block
  with the 1/4 skip (``srp.0``), 4 residual blocks (``Decoder.0``); 4w->w, with the 1/2
  skip (``srp.1``, ``Decoder.1``); 2w->w, with ``x`` itself (``srp.2``, ``Decoder.2``);
  a 3x3 head to 3 channels (``out``), clipped to [-1, 1]. Without the sharp-region blocks
  the skips are concatenated. The reverse path (:meth:`K3DN.reverse_image`): the same
  encoder on another image, the blocks 0..7 in their reverse form with given disparity
  vectors, the same decoder with that image's own skips, head and clip.
* Ours:
  - The output is ``clip(head, -1, 1) + 0.5``, always a
    :class:`~dpdeblur.models.output.DeblurOutput`.
  - Any H, W: both views are reflect-padded (bottom, right) to a multiple of 288 x 224 (W
    at least 448), the sizes where the release's window grid is its own (DPDD's 1120x1680
    pads to the 1152x1792 the release resizes to), and the output is cropped back. The
    release's resize protocol is an evaluation option (docs/k3dn.md).
  - The reblur term's use of the reverse path: in training mode (``reblur=True``) the
    output carries ``reblur_fn``, :meth:`K3DN.reverse_image` bound to the disparity
    vectors of the blurry pair; the ``reblur`` loss term calls it on the ground truth (or,
    as an option, on the estimate) and compares the result with the blurry input
    (:mod:`dpdeblur.training.losses`). Eval mode never runs it.
  - Options (defaults = the release): ``deblur="inverse_filter"``, ``weights="bounded"``,
    ``residual_gain``, ``disparity="two_sided"``, ``sharp_gate="sigmoid"``, other window
    sizes; the sizes ``k3dn_light`` (32) and ``k3dn_tiny`` (16) (the release ships only
    48); ablations ``k3dn_no_sym`` (free kernels), ``k3dn_no_srp``, ``k3dn_concat`` (the
    cost volume replaced by the plain concatenation of the view features).
  - Two-stage recipe hooks: ``K3DN.stage2_prefixes`` (the sharp-region blocks, left out
    when loading a stage-1 checkpoint, e.g. ``k3dn_no_srp``) and
    :meth:`K3DN.freeze_for_stage2` (only the sharp-region blocks stay trainable). The
    sharp-region blocks start as the identity (their last conv is zero).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dpdeblur.models.output import DeblurOutput
from dpdeblur.models.padding import check_dp_inputs, crop_to
from dpdeblur.models.registry import ModelInfo, register_model
from dpdeblur.nn.disparity import RELEASE_WINDOW, DisparityBranch
from dpdeblur.nn.k3dn_layers import BasicConv, EBlock
from dpdeblur.nn.kernel_deblur import REVERSE_KERNELS, DisparityAwareDeblurBlock
from dpdeblur.nn.sharp_region import SharpRegionPreservation

FEATURE_STRIDE = 8  # the deblur stage runs at 1/8 resolution
DISPARITY_MODES = {"cost_volume": "one_sided", "two_sided": "two_sided", "concat": "concat"}
RELEASE_MULTIPLE = (288, 224)  # the padded size's multiple with 18x14 windows
RELEASE_MIN_WIDTH = 448  # the context pool of 32 feature pixels needs W/8 >= 32
REBLUR_THROUGH = ("all", "blocks")


def _pad_reflect(x: Tensor, height: int, width: int) -> Tensor:
    """Reflect-pad the bottom/right of ``x`` to ``height x width``: in steps where the pad
    exceeds the side, replicating where a side is 1 pixel."""
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    while pad_h > 0 or pad_w > 0:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:
            return nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = nn.functional.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def _call(module: nn.Module, frozen: bool, *args: Tensor) -> Tensor:
    """``module(*args)``, with its weights detached when ``frozen`` (gradients still flow
    through it to the inputs)."""
    if not frozen:
        return module(*args)
    state = {name: value.detach() for name, value in module.state_dict(keep_vars=True).items()}
    return torch.func.functional_call(module, state, args)


class K3DN(nn.Module):
    """K3DN on a DP pair; ``model(left, right) -> DeblurOutput``.

    Args:
        base_channels: channels ``w`` of the U-Net's first level (48; 2w and 4w below).
        num_res: residual blocks per encoder / decoder level (4).
        num_deblur_blocks: deblur blocks at 1/8 resolution (8).
        kernel_size: odd size of the kernels (9).
        spectrum_size: grid of each kernel's stored spectrum (10).
        window_size: (rows, columns) at 1/8 of the windows that share one disparity vector
            (18, 14); an int means square windows (ours).
        symmetric: mirror-symmetric kernels (the DP constraint).
        disparity: ``"cost_volume"`` (release: shifts 0..max_shift), ``"two_sided"``
            (ours: -max_shift..max_shift) or ``"concat"`` (ablation: no cost volume).
        disparity_dim: length D of each window's disparity vector (256).
        disparity_channels: width ``f`` of the disparity branch (32).
        max_shift: largest cost-volume shift at 1/8 (3).
        context_pools: the disparity branch's context pool sizes at 1/8 (32, 16).
        sharp_region: add the sharp-region blocks at the decoder fusions.
        sharp_region_res: residual blocks inside each sharp-region block (4).
        sharp_gate: ``"linear"`` (release) or ``"sigmoid"`` (ours).
        reblur: in training mode, give the loss the reverse path (``reblur_fn``).
        reverse_kernel: the reverse path's kernels, ``"reciprocal"`` (the training-mode
            release module) or ``"forward"`` (what its inference switch leaves).
        reblur_through: which weights the reverse path's gradient reaches: ``"all"`` or
            ``"blocks"`` (ours: the deblur blocks and the disparity branch only; the
            encoder, decoder and head are used with detached weights).
        deblur: ``"correlation"`` (release) or ``"inverse_filter"`` (ours).
        spectrum_floor: transfer floor of ``"inverse_filter"``.
        weights: channel weights ``"softmax"`` (release) or ``"bounded"`` (ours).
        logit_bound: bound of the ``"bounded"`` weights' logits.
        residual_gain: ``None`` (release) or the initial learnable residual gain (ours).
    """

    def __init__(
        self,
        base_channels: int = 48,
        num_res: int = 4,
        num_deblur_blocks: int = 8,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        window_size: int | Sequence[int] = RELEASE_WINDOW,
        symmetric: bool = True,
        disparity: str = "cost_volume",
        disparity_dim: int = 256,
        disparity_channels: int = 32,
        max_shift: int = 3,
        context_pools: Sequence[int] = (32, 16),
        sharp_region: bool = True,
        sharp_region_res: int = 4,
        sharp_gate: str = "linear",
        reblur: bool = True,
        reverse_kernel: str = "reciprocal",
        reblur_through: str = "all",
        deblur: str = "correlation",
        spectrum_floor: float = 0.1,
        weights: str = "softmax",
        logit_bound: float = 3.0,
        residual_gain: float | None = None,
    ):
        super().__init__()
        if (
            isinstance(base_channels, bool)
            or not isinstance(base_channels, int)
            or base_channels < 1
        ):
            raise ValueError(
                f"base_channels is K3DN's base channel count (its U-Net's first level: 48, "
                f"32, 16 for the three sizes), a positive integer, got {base_channels!r}"
            )
        if disparity not in DISPARITY_MODES:
            raise ValueError(
                f"disparity must be one of {tuple(DISPARITY_MODES)}, got {disparity!r}"
            )
        if reblur_through not in REBLUR_THROUGH:
            raise ValueError(
                f"reblur_through must be one of {REBLUR_THROUGH}, got {reblur_through!r}"
            )
        if reverse_kernel not in REVERSE_KERNELS:
            raise ValueError(
                f"reverse_kernel must be one of {REVERSE_KERNELS}, got {reverse_kernel!r}"
            )
        window = (window_size, window_size) if isinstance(window_size, int) else window_size
        self.window_size = tuple(int(side) for side in window)
        smallest = kernel_size if deblur == "inverse_filter" else 1
        if len(self.window_size) != 2 or min(self.window_size) < smallest:
            raise ValueError(
                f"window_size ({window_size}) must be one or two sides of at least "
                f"{smallest} (kernel_size with deblur='inverse_filter')"
            )
        self.reblur = reblur
        self.reverse_kernel = reverse_kernel
        self.reblur_through = reblur_through
        w, views = base_channels, 6

        # Registration order = the release's state-dict order:
        # Encoder, feat_extract, Decoder, disp, deblur, out, srp.
        self.Encoder = nn.ModuleList(EBlock(c, num_res) for c in (w, 2 * w, 4 * w))
        self.feat_extract = nn.ModuleList(
            [
                BasicConv(views, w, 3, stride=2),
                BasicConv(w, 2 * w, 3, stride=2),
                BasicConv(2 * w, 4 * w, 3, stride=2),
                BasicConv(4 * w, 2 * w, 4, stride=2, transpose=True),
                BasicConv(4 * w, w, 4, stride=2, transpose=True),
                BasicConv(2 * w, w, 4, stride=2, transpose=True),
            ]
        )
        fusions = ((2 * w, 2 * w), (w, w), (views, w))  # (skip, upsampled) channels
        self.Decoder = nn.ModuleList(EBlock(s + u, num_res) for s, u in fusions)
        self.disp = DisparityBranch(
            disparity_dim,
            disparity_channels,
            DISPARITY_MODES[disparity],
            max_shift,
            context_pools,
        )
        self.deblur = nn.ModuleList(
            DisparityAwareDeblurBlock(
                4 * w,
                disparity_dim,
                kernel_size,
                spectrum_size,
                symmetric,
                weights,
                deblur,
                spectrum_floor,
                residual_gain,
                logit_bound,
            )
            for _ in range(num_deblur_blocks)
        )
        self.out = BasicConv(w + views, 3, 3, act=False)
        self.srp = (
            nn.ModuleList(
                SharpRegionPreservation(s, u, sharp_region_res, gate=sharp_gate) for s, u in fusions
            )
            if sharp_region
            else None
        )

    # -- sizes -------------------------------------------------------------------------
    def padding_multiple(self) -> tuple[int, int]:
        """(H, W) multiples the forward reflect-pads to: 288 x 224 with the release's 18x14
        windows (the grid its disparity branch makes), else 8 x the window."""
        if self.window_size == RELEASE_WINDOW:
            return RELEASE_MULTIPLE
        return FEATURE_STRIDE * self.window_size[0], FEATURE_STRIDE * self.window_size[1]

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height x width`` pair is reflect-padded to."""
        mh, mw = self.padding_multiple()
        padded = (-(-height // mh) * mh, -(-width // mw) * mw)
        if self.window_size == RELEASE_WINDOW:
            padded = (padded[0], max(padded[1], RELEASE_MIN_WIDTH))
        return padded

    def input_multiple(self) -> int:
        """One side multiple of both padding multiples (their lcm), for square tiles:
        2016 for the release's windows, ``8 x window`` for square ones."""
        return math.lcm(*self.padding_multiple())

    def window_grid(self, height: int, width: int) -> tuple[int, int]:
        """The window grid ``(p1, p2)`` of a padded ``height x width`` pair."""
        h, w = height // FEATURE_STRIDE, width // FEATURE_STRIDE
        grid = (h // self.window_size[0], w // self.window_size[1])
        if min(grid) < 1 or h % grid[0] or w % grid[1]:
            raise ValueError(
                f"{h}x{w} features (a {height}x{width} pair) do not fold into "
                f"{self.window_size[0]}x{self.window_size[1]} windows"
            )
        return grid

    # -- the stages --------------------------------------------------------------------
    def encode(self, x: Tensor, frozen: bool = False) -> tuple[list[Tensor], Tensor]:
        """Skips ``[x, 1/2, 1/4]`` and the 1/8 features of a shifted 6-channel input
        (``frozen``: the weights take no gradient from this call)."""
        skips = [x]
        for down, stack in zip(self.feat_extract[:3], self.Encoder, strict=True):
            skips.append(_call(stack, frozen, _call(down, frozen, skips[-1])))
        return skips[:-1], skips[-1]

    def disparity_vectors(self, left: Tensor, right: Tensor) -> Tensor:
        """(B p1 p2) x D vectors of the shifted, padded views (``left - 0.5``)."""
        grid = self.window_grid(*left.shape[-2:])
        return self.disp(left, right, grid, self.window_size)

    @staticmethod
    def to_windows(features: Tensor, grid: tuple[int, int]) -> Tensor:
        """B x C x h x w -> (B p1 p2) x C x h/p1 x w/p2, window ``n = b p1 p2 + i p2 + j``."""
        b, c, h, w = features.shape
        p1, p2 = grid
        x = features.reshape(b, c, p1, h // p1, p2, w // p2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b * p1 * p2, c, h // p1, w // p2)

    @staticmethod
    def from_windows(windows: Tensor, batch: int, grid: tuple[int, int]) -> Tensor:
        """The inverse of :meth:`to_windows`."""
        _, c, wh, ww = windows.shape
        p1, p2 = grid
        x = windows.reshape(batch, p1, p2, c, wh, ww).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(batch, c, p1 * wh, p2 * ww)

    def run_blocks(
        self, features: Tensor, vectors: Tensor, reverse: bool = False, kernel: str | None = None
    ) -> Tensor:
        """The deblur blocks 0..7 in order (each in its reverse form with ``reverse``) on
        1/8 features B x 4w x h x w, folded into windows and back."""
        batch, _, h, w = features.shape
        grid = self.window_grid(h * FEATURE_STRIDE, w * FEATURE_STRIDE)
        windows = self.to_windows(features, grid)
        kernel = kernel or self.reverse_kernel
        for block in self.deblur:
            windows = (
                block.reverse(windows, vectors, kernel) if reverse else block(windows, vectors)
            )
        return self.from_windows(windows, batch, grid)

    def decode(self, features: Tensor, skips: list[Tensor], frozen: bool = False) -> Tensor:
        """Decoder (with the sharp-region blocks if present), head, clip to [-1, 1]."""
        for level, stack in enumerate(self.Decoder):
            skip = skips[-1 - level]
            upsampled = _call(self.feat_extract[3 + level], frozen, features)
            if self.srp is not None:
                fused = _call(self.srp[level], frozen, skip, upsampled)
            else:
                fused = torch.cat([skip, upsampled], dim=1)
            features = _call(stack, frozen, fused)
        return torch.clamp(_call(self.out, frozen, features), -1.0, 1.0)

    def _padded_pair(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        height, width = self.padded_size(*left.shape[-2:])
        return _pad_reflect(left, height, width) - 0.5, _pad_reflect(right, height, width) - 0.5

    def reverse_path(self, x: Tensor, vectors: Tensor, kernel: str | None = None) -> Tensor:
        """The reverse path on a shifted, padded 6-channel input ``x``: encoded, the blocks
        0..7 in their reverse form with ``vectors``, decoded with ``x``'s own skips; the
        clipped head (in [-1, 1]). With ``reblur_through="blocks"`` the encoder, decoder
        and head take no gradient from it."""
        frozen = self.reblur_through == "blocks"
        skips, features = self.encode(x, frozen)
        restored = self.run_blocks(features, vectors, reverse=True, kernel=kernel)
        return self.decode(restored, skips, frozen)

    def reverse_image(self, image: Tensor, vectors: Tensor, kernel: str | None = None) -> Tensor:
        """Module (ii) on an all-in-focus image (B x 3 x H x W in [0, 1]): the reverse path
        on ``[I - 0.5, I - 0.5]`` with ``vectors`` (:meth:`disparity_vectors` of the blurry
        pair, same padded size); ``clip(head) + 0.5``, cropped to H x W."""
        shifted, _ = self._padded_pair(image, image)
        out = self.reverse_path(torch.cat([shifted, shifted], dim=1), vectors, kernel)
        return crop_to(out + 0.5, image.shape[-2:])

    def forward(self, left: Tensor, right: Tensor) -> DeblurOutput:
        """Deblur a DP pair (B x 3 x H x W each, values in [0, 1], any H, W)."""
        check_dp_inputs(left, right)
        size = left.shape[-2:]
        left_s, right_s = self._padded_pair(left, right)
        skips, features = self.encode(torch.cat([left_s, right_s], dim=1))
        vectors = self.disparity_vectors(left_s, right_s)
        restored = self.run_blocks(features, vectors)
        image = crop_to(self.decode(restored, skips) + 0.5, size)
        if not (self.training and self.reblur):
            return DeblurOutput(image=image)
        return DeblurOutput(
            image=image,
            extras={"disparity": vectors},
            reblur_fn=functools.partial(self.reverse_image, vectors=vectors),
        )

    # -- introspection and the two-stage recipe ------------------------------------------
    def kernels(self, reciprocal: bool = False) -> list[Tensor]:
        """Each deblur block's spatial kernels ``K`` (or ``K'``), C x k x k."""
        return [block.conv1.kernels(reciprocal) for block in self.deblur]

    # The blocks stage 2 adds to a stage-1 network (this model without them): the stage-1
    # loader (dpdeblur.runs.state_dict.load_stage1_state_dict) requires every other weight.
    stage2_prefixes = ("srp.",)

    def freeze_for_stage2(self) -> K3DN:
        """Stage 2 of the recipe: only the sharp-region blocks stay trainable."""
        if self.srp is None:
            raise ValueError("freeze_for_stage2 needs sharp_region=True (no blocks to train)")
        self.requires_grad_(False)
        self.srp.requires_grad_(True)
        return self


def _k3dn(overrides: dict, **defaults) -> K3DN:
    return K3DN(**{**defaults, **overrides})


def k3dn_info(main_benchmark: bool = False, weights_format: str | None = None) -> ModelInfo:
    """The facts every K3DN variant shares."""
    return ModelInfo(
        architecture=K3DN,
        paper="Yang, Pan, Liu, Liu, K3DN: Disparity-aware Kernel Estimation for Dual-Pixel "
        "Defocus Deblurring, CVPR 2023 (no authors' code; the network of the public "
        "third-party K3DN code, docs/k3dn.md)",
        size_argument="base_channels",
        size_meaning="channel count of the U-Net's first level (48, 32, 16); it has no width",
        input_multiple=K3DN.input_multiple,
        margin=None,
        global_context="global context: the disparity branch pools 256x256-pixel context and "
        "the window grid of its vectors follows the padded size (H, W padded to 288 x 224)",
        output=DeblurOutput,
        weights_format=weights_format,
        main_benchmark=main_benchmark,
    )


@register_model(info=k3dn_info(main_benchmark=True, weights_format="k3dn-release-pt"))
def k3dn(**kwargs) -> K3DN:
    """K3DN as the public code computes it, with sharp-region preservation (16,099,350
    parameters; its released checkpoint loads strictly)."""
    return _k3dn(kwargs, base_channels=48, disparity_dim=256, disparity_channels=32)


@register_model(info=k3dn_info(main_benchmark=True))
def k3dn_light(**kwargs) -> K3DN:
    """Ours: the ``k3dn`` network with 32 base channels, disparity vectors of 128 and a
    disparity branch of width 24 (the release ships only 48)."""
    return _k3dn(kwargs, base_channels=32, disparity_dim=128, disparity_channels=24)


@register_model(info=k3dn_info(main_benchmark=True))
def k3dn_tiny(**kwargs) -> K3DN:
    """Ours: the ``k3dn`` network with 16 base channels, disparity vectors of 64 and a
    disparity branch of width 16 (the CPU/demo size)."""
    return _k3dn(kwargs, base_channels=16, disparity_dim=64, disparity_channels=16)


@register_model(info=k3dn_info())
def k3dn_no_sym(**kwargs) -> K3DN:
    """Ablation: ``k3dn`` with free (not mirror-symmetric) 9x9 kernels."""
    return k3dn(**{"symmetric": False, **kwargs})


@register_model(info=k3dn_info())
def k3dn_no_srp(**kwargs) -> K3DN:
    """Ablation and stage-1 network: ``k3dn`` without sharp-region preservation, the skips
    concatenated (10,556,754 parameters)."""
    return k3dn(**{"sharp_region": False, **kwargs})


@register_model(info=k3dn_info())
def k3dn_concat(**kwargs) -> K3DN:
    """Ablation: ``k3dn`` with the cost volume replaced by the plain concatenation of the two
    views' features (one plane, no shifts; the same weights)."""
    return k3dn(**{"disparity": "concat", **kwargs})


@register_model(info=k3dn_info())
def k3dn_fourier(**kwargs) -> K3DN:
    """Ours: ``k3dn`` with dpdeblur's earlier choices (inverse-filter deblur, bounded
    mean-1 weights, residual gain 0.1, two-signed cost volume, sigmoid gate)."""
    return k3dn(
        **{
            "deblur": "inverse_filter",
            "weights": "bounded",
            "residual_gain": 0.1,
            "disparity": "two_sided",
            "sharp_gate": "sigmoid",
            **kwargs,
        }
    )
