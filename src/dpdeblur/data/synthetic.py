"""Synthetic dual-pixel data: layered scenes rendered through a thin lens with DP kernels.

The embedded default dataset: no download, every sample rendered on the fly and
reproducible from ``(seed, split, epoch, index)``. The physics is in
:mod:`dpdeblur.data.optics` (CoC radius, DP kernels) and the scenes, two families, in
:mod:`dpdeblur.data.scenes` (``layers``) and :mod:`dpdeblur.data.photo_scenes`
(``photo``); docs/synthetic.md explains the model.

Image formation (:func:`render_layers`). Layers are fronto-parallel planes (or planes
with a per-pixel depth, blurred at CoC levels blended per pixel: :func:`_blur_plan`),
composited far to near. For each view v in {L, R}, with layer k's DP kernel ``h_k^v`` (sum 1/2), the
layer's premultiplied colour and its alpha are both blurred by ``h_k^v`` and composited
with "over":

    P = h_k^v * (alpha_k c_k),   A = h_k^v * alpha_k,   V <- V (1 - 2 A) + P

``2 A`` is the fraction of that view's half-aperture blocked by the layer, so defocused
near edges spread over what lies behind them (and hide it), as in real DP images. The
sharp target is the same composite with no blur: ``T <- T (1 - alpha_k) + alpha_k c_k``.

Units. The renderer works in photon units: each view collects half the light, so
``combined = L + R`` exactly and has the target's brightness, and an in-focus scene gives
``L == R == T / 2``. DPDD stores each DP view at the brightness of the combined image, so a
*dataset sample* (:meth:`DPRender.to_sample`, :func:`render_sample`,
:class:`SyntheticDPDataset`) holds ``left = 2 L`` and ``right = 2 R`` (each view as bright
as the target) and ``combined = L + R``, i.e. ``(left + right) / 2`` in sample units.
Without noise ``2 L`` is a convex mix of texture colours, so views stay in [0, 1]; every
image is clipped to [0, 1] once, at the very end (only sensor noise can trigger it, and
then ``combined`` may differ from ``(left + right) / 2`` at the clipped pixels).

Sensor noise (:class:`SensorNoise`, off by default): Poisson-Gaussian on each view in
sample units, ``y = a Poisson(x / a) + N(0, b^2)``, applied after the views are formed;
``combined`` is then the sum of the noisy photon-unit views, as a camera sums its two
photodiodes.

Speed: the convolutions are FFTs (one forward transform per layer serves both views);
rendering times are in docs/benchmarks.md ("Synthetic data").

Determinism (docs/data.md, "What 'deterministic' means"): all randomness comes from the
sample's generator, and no draw depends on a computed pixel value except the Poisson noise.
The FFTs are SciPy's pocketfft on one thread, not torch's (MKL's results depend on the
thread count: up to 3e-7 between 1 and 2 threads), and OpenCV splits work by rows, so a
seed gives the same pixels bit for bit whatever the torch, OpenMP or OpenCV thread count.
Across CPUs, NumPy's and OpenCV's SIMD code paths differ in the last bit (views within
1e-6; noise draws can then diverge).

Not modelled: depth steps inside a layer, lens aberrations and vignetting, the DP
sensor's angular response beyond the kernel shape, the camera's tone curve (blur and the
L + R sum happen in the textures' stored values, not in linear light), colour filter
arrays and demosaicking.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import scipy.fft
import torch
from torch.utils.data import Dataset

from dpdeblur.data.optics import KERNEL_KINDS, ThinLensCamera, dp_kernels, kernel_half_size
from dpdeblur.data.photo_scenes import PHOTO_PROB, coc_limits, photo_layers
from dpdeblur.data.scenes import (
    SCENE_FAMILIES,
    Layer,
    TextureBank,
    default_texture_bank,
    random_layers,
)

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
LAYERS_PHOTO_PROB = 0.5  # share of photographs among the ``layers`` family's textures
SAMPLE_IMAGE_KEYS = ("left", "right", "combined", "target")


def split_id(split: str) -> int:
    """A stable integer for a split name (train 0, val 1, test 2, others a CRC32)."""
    return SPLIT_IDS.get(split, zlib.crc32(split.encode("utf-8")))


# -- rendering ------------------------------------------------------------------------


def fft_size(n: int) -> int:
    """The smallest integer >= ``n`` whose only prime factors are 2, 3 and 5."""
    size = max(1, int(n))
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def _psf_spectrum(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Real FFT of ``psf`` laid on an HxW grid with its centre at the origin (wrapped)."""
    half_y, half_x = psf.shape[0] // 2, psf.shape[1] // 2
    grid = np.zeros(shape, dtype=np.float32)
    grid[: psf.shape[0], : psf.shape[1]] = psf
    grid = np.roll(grid, shift=(-half_y, -half_x), axis=(0, 1))
    return scipy.fft.rfft2(grid, workers=1)


def convolve_psfs(image: np.ndarray, psfs: Sequence[np.ndarray], pad: int) -> list[np.ndarray]:
    """``image`` (HxWxC float32) convolved with each point-spread function of ``psfs``.

    A point of light at (y, x) becomes the PSF centred on (y, x) (a convolution, not a
    correlation). One forward FFT serves every PSF (both DP views of a layer). The image is
    first mirror-padded by ``pad`` pixels (OpenCV's BORDER_REFLECT_101), then zero-padded
    at the bottom and right to a size whose only prime factors are 2, 3 and 5 (a canvas of
    146 = 2 x 73 pixels made the FFT several times slower); outputs farther than ``half
    kernel size - pad`` from the border are therefore exact linear convolutions, and with
    ``pad >= half size`` every output pixel is a linear convolution with mirrored borders.
    """
    if pad > 0:
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    shape = image.shape[:2]
    fast = (fft_size(shape[0]), fft_size(shape[1]))
    spectrum = scipy.fft.rfft2(image.transpose(2, 0, 1), s=fast, workers=1)
    outputs = []
    for psf in psfs:
        if psf.shape[0] > shape[0] or psf.shape[1] > shape[1]:
            raise ValueError(f"kernel {psf.shape} is larger than the padded image {shape}")
        blurred = scipy.fft.irfft2(spectrum * _psf_spectrum(psf, fast), s=fast, workers=1)
        blurred = blurred[:, : shape[0], : shape[1]].transpose(1, 2, 0)
        if pad > 0:
            blurred = blurred[pad:-pad, pad:-pad]
        outputs.append(np.ascontiguousarray(blurred, dtype=np.float32))
    return outputs


def convolve_psf(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """``image`` (HxWxC) convolved with one PSF, borders mirrored; a 1x1 PSF is a scaling."""
    if psf.shape == (1, 1):
        return image * psf[0, 0]
    return convolve_psfs(image, [psf], pad=psf.shape[0] // 2)[0]


@dataclass(frozen=True)
class SensorNoise:
    """Poisson-Gaussian noise on each DP view, in sample units ([0, 1], view as bright as
    the target): ``y = shot * Poisson(x / shot) + N(0, read^2)``.

    Reproducible for a seed on one machine; across CPUs it is not: how many random numbers
    the Poisson sampler takes depends on ``x``, so a last-bit change of ``x`` there can
    change the rest of the noise pattern.

    Attributes:
        shot: Poisson gain a (variance ``a * x``; 1 / a photo-electrons at full scale).
        read: standard deviation b of the signal-independent Gaussian read noise.
    """

    shot: float = 0.0
    read: float = 0.0

    def __post_init__(self) -> None:
        if self.shot < 0 or self.read < 0:
            raise ValueError(f"noise parameters must be >= 0: {self}")

    @property
    def enabled(self) -> bool:
        return self.shot > 0 or self.read > 0

    def apply(self, view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of ``view`` (float32; not clipped)."""
        noisy = view.astype(np.float64)
        if self.shot > 0:
            noisy = self.shot * rng.poisson(np.maximum(noisy, 0.0) / self.shot)
        if self.read > 0:
            noisy = noisy + rng.normal(0.0, self.read, size=view.shape)
        return noisy.astype(np.float32)


@dataclass
class DPRender:
    """A rendered DP scene in photon units (see the module docstring).

    Attributes:
        target: sharp all-in-focus composite, HxWx3.
        left, right: the two DP views, each holding half the light, HxWx3.
        combined: ``left + right``, HxWx3.
        depth: depth of the visible surface (nearest layer with alpha >= 1/2), HxW, metres.
        coc: signed CoC radius of the visible surface, HxW, pixels (> 0 behind focus).
    """

    target: np.ndarray
    left: np.ndarray
    right: np.ndarray
    combined: np.ndarray
    depth: np.ndarray
    coc: np.ndarray

    def crop(self, margin: int) -> DPRender:
        """The render without a border of ``margin`` pixels on every side."""
        if margin <= 0:
            return self
        window = (slice(margin, -margin), slice(margin, -margin))
        return DPRender(**{f.name: getattr(self, f.name)[window] for f in fields(self)})

    def to_sample(self, clip: bool = True) -> dict[str, np.ndarray]:
        """Sample units: views x2 (as bright as the target), ``combined = L + R``.

        Images are HxWx3 float32, clipped to [0, 1] when ``clip``; ``depth`` and ``coc``
        are HxWx1 float32.
        """
        images = {
            "left": 2.0 * self.left,
            "right": 2.0 * self.right,
            "combined": self.combined,
            "target": self.target,
        }
        sample = {
            key: np.ascontiguousarray(np.clip(v, 0.0, 1.0) if clip else v, dtype=np.float32)
            for key, v in images.items()
        }
        sample["depth"] = np.ascontiguousarray(self.depth[:, :, None], dtype=np.float32)
        sample["coc"] = np.ascontiguousarray(self.coc[:, :, None], dtype=np.float32)
        return sample


# A slanted layer is blurred at CoC radii this far apart, blended per pixel (_blur_plan).
SLANT_LEVEL_PX = 1.0


def _blur_plan(
    layer: Layer, camera: ThinLensCamera, kernel: str, options: Mapping[str, float]
) -> list[tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]]]:
    """How to blur one layer: ``(weight map or None, (kL, kR))`` pairs whose weighted sum of
    blurred layers is the layer's blur in each view.

    A fronto-parallel layer has one pair (weight None: everywhere). A layer with a
    ``depth_map`` is blurred at CoC radii :data:`SLANT_LEVEL_PX` apart spanning its map, and
    each output pixel blends the two levels around its own radius linearly (weights sum to
    1): a "gather" approximation of depth-varying blur, close where the radius changes slowly
    across a kernel's width, as on a ground plane (its radius is affine in the image
    coordinates). Levels that no pixel uses are dropped.
    """
    if layer.depth_map is None:
        return [(None, dp_kernels(camera.coc_radius_px(layer.depth), kernel, **options))]
    coc = camera.coc_radius_px(layer.depth_map.astype(np.float64)).astype(np.float32)
    low = math.floor(float(coc.min()) / SLANT_LEVEL_PX)
    high = math.ceil(float(coc.max()) / SLANT_LEVEL_PX)
    plan = []
    for level in range(low, high + 1):
        radius = level * SLANT_LEVEL_PX
        weight = np.clip(1.0 - np.abs(coc - np.float32(radius)) / SLANT_LEVEL_PX, 0.0, 1.0)
        if weight.any():
            plan.append((weight.astype(np.float32), dp_kernels(radius, kernel, **options)))
    return plan


def _blur_layer(
    premultiplied: np.ndarray,
    plan: Sequence[tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]]],
    pad: int,
) -> list[np.ndarray]:
    """The left and right views' blur of a premultiplied layer (HxWx4) under ``plan``.

    In-focus kernels (1x1) are exact scalings, with no FFT round-off; every other kernel of
    the layer shares one forward FFT (:func:`convolve_psfs`).
    """
    psfs = [psf for _, pair in plan for psf in pair if psf.shape != (1, 1)]
    blurred = iter(convolve_psfs(premultiplied, psfs, pad) if psfs else [])
    views = []
    for weight, pair in plan:
        level = [
            premultiplied * psf[0, 0] if psf.shape == (1, 1) else next(blurred) for psf in pair
        ]
        if weight is not None:
            level = [image * weight[:, :, None] for image in level]
        views = (
            level if not views else [total + part for total, part in zip(views, level, strict=True)]
        )
    return views


def render_layers(
    layers: Sequence[Layer],
    camera: ThinLensCamera,
    kernel: str = "soft",
    *,
    margin: int = 0,
    noise: SensorNoise | None = None,
    rng: np.random.Generator | None = None,
    kernel_options: Mapping[str, float] | None = None,
) -> DPRender:
    """Render layers (any order: sorted far to near here) into DP views and the target.

    Args:
        layers: fronto-parallel layers, all of the same HxW.
        camera: thin-lens camera (focus distance, aperture, pixel pitch).
        kernel: DP kernel model, "soft" or "hard" (:func:`dpdeblur.data.optics.dp_kernels`).
        margin: border cropped from every output after rendering. Give the canvas a margin
            of at least the largest kernel's half size and no blur sees the canvas edge;
            otherwise the layers are mirror-padded as far as needed.
        noise: sensor noise on the views after cropping (needs ``rng``); None: no noise.
        rng: generator for the noise.
        kernel_options: extra arguments of :func:`dp_kernels` (soft kernel shape).
    """
    if not layers:
        raise ValueError("a scene needs at least one layer")
    if kernel not in KERNEL_KINDS:
        raise ValueError(f"unknown DP kernel kind {kernel!r}; use one of {KERNEL_KINDS}")
    ordered = sorted(layers, key=lambda layer: -layer.depth)  # stable: ties keep their order
    shape = ordered[0].alpha.shape
    target = np.zeros((*shape, 3), np.float32)
    views = [np.zeros((*shape, 3), np.float32), np.zeros((*shape, 3), np.float32)]
    depth = np.full(shape, ordered[0].depth, np.float32)
    options = dict(kernel_options or {})
    blur_plans = [_blur_plan(layer, camera, kernel, options) for layer in ordered]
    largest = max(left.shape[0] // 2 for plan in blur_plans for _, (left, _) in plan)
    pad = max(0, largest - margin)
    for layer, plan in zip(ordered, blur_plans, strict=True):
        if layer.alpha.shape != shape or layer.texture.shape != (*shape, 3):
            raise ValueError("all layers must share one HxW (texture HxWx3, alpha HxW)")
        if layer.depth_map is not None and layer.depth_map.shape != shape:
            raise ValueError("a layer's depth_map must have the layer's HxW")
        alpha = layer.alpha.astype(np.float32)[:, :, None]
        premultiplied = np.concatenate([alpha * layer.texture.astype(np.float32), alpha], axis=2)
        target = target * (1.0 - alpha) + premultiplied[:, :, :3]
        blurred_views = _blur_layer(premultiplied, plan, pad)
        for view, blurred in zip(views, blurred_views, strict=True):
            view *= 1.0 - 2.0 * blurred[:, :, 3:]
            view += blurred[:, :, :3]
        visible = layer.alpha >= 0.5
        depth[visible] = layer.depth if layer.depth_map is None else layer.depth_map[visible]
    render = DPRender(
        target=target,
        left=views[0],
        right=views[1],
        combined=views[0] + views[1],
        depth=depth,
        coc=camera.coc_radius_px(depth.astype(np.float64)).astype(np.float32),
    ).crop(margin)
    if noise is not None and noise.enabled:
        if rng is None:
            raise ValueError("sensor noise needs a random generator (rng)")
        render.left = 0.5 * noise.apply(2.0 * render.left, rng)
        render.right = 0.5 * noise.apply(2.0 * render.right, rng)
        render.combined = render.left + render.right
    return render


# -- random scenes --------------------------------------------------------------------


@dataclass
class SceneSettings:
    """How random scenes are drawn (all ranges inclusive; metres and pixels).

    Attributes:
        camera: base camera; focus distance and f-number are redrawn per scene from the
            ranges below when these are set (log-uniform), else kept.
        focus_range_m: focus distance range.
        f_number_range: f-number range.
        depth_range_m: depths of layers, drawn uniformly in inverse depth (the CoC is
            linear in 1/d) within this range and where |CoC| <= ``max_coc_px``.
        max_coc_px: the largest blur radius a layer may get.
        num_layers: (min, max) number of foreground layers; a background layer is added
            (``layers`` family only).
        in_focus_prob: chance that one layer sits exactly at the focus distance (``layers``
            family only; ``photo`` scenes always have subjects near the focal plane).
        photo_prob: chance that a layer's texture is a photograph (else procedural); None:
            the family's own (``layers`` 0.5, ``photo`` 0.8).
        kernel: DP kernel model, "soft" or "hard".
        kernel_options: extra arguments of :func:`dpdeblur.data.optics.dp_kernels`; a
            ``[low, high]`` pair instead of a number draws the value per scene (uniform), e.g.
            ``{"sigma_frac": [0.05, 0.2]}``: soft kernels of varied shapes.
        noise: sensor noise, or None (default: off).
        scenes: the scene family, "layers" (random shapes at random depths,
            :func:`~dpdeblur.data.scenes.random_layers`) or "photo" (built like a
            photograph: background, ground plane, subjects near focus, occluders;
            :mod:`dpdeblur.data.photo_scenes`).
    """

    camera: ThinLensCamera = field(default_factory=ThinLensCamera)
    focus_range_m: tuple[float, float] | None = (1.2, 4.0)
    f_number_range: tuple[float, float] | None = (2.8, 5.6)
    depth_range_m: tuple[float, float] = (0.5, 100.0)
    max_coc_px: float = 16.0
    num_layers: tuple[int, int] = (3, 5)
    in_focus_prob: float = 0.5
    photo_prob: float | None = None
    kernel: str = "soft"
    kernel_options: dict[str, float | tuple[float, float]] = field(default_factory=dict)
    noise: SensorNoise | None = None
    scenes: str = "layers"

    def __post_init__(self) -> None:
        if self.scenes not in SCENE_FAMILIES:
            raise ValueError(f"unknown scene family {self.scenes!r}; use one of {SCENE_FAMILIES}")
        if isinstance(self.camera, Mapping):
            self.camera = ThinLensCamera(**dict(self.camera))
        if isinstance(self.noise, Mapping):
            self.noise = SensorNoise(**dict(self.noise))
        for name in ("focus_range_m", "f_number_range", "depth_range_m", "num_layers"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(value)
            lowest = 0 if name == "num_layers" else 1e-9
            if len(value) != 2 or not lowest <= value[0] <= value[1]:
                raise ValueError(
                    f"{name} must be (low, high) with {lowest} <= low <= high, got {value}"
                )
            setattr(self, name, value)
        if self.kernel not in KERNEL_KINDS:
            raise ValueError(f"unknown DP kernel kind {self.kernel!r}; use one of {KERNEL_KINDS}")
        if self.max_coc_px <= 0:
            raise ValueError(f"max_coc_px must be positive, got {self.max_coc_px}")
        self.kernel_options = {
            name: value if isinstance(value, int | float) else _range(name, value)
            for name, value in dict(self.kernel_options or {}).items()
        }
        low, high = self.focus_range_m or (self.camera.focus_distance_m,) * 2
        if low < self.depth_range_m[0] or high > self.depth_range_m[1]:
            raise ValueError("focus distances must lie inside depth_range_m")

    @property
    def photo_share(self) -> float:
        """``photo_prob``, or the scene family's own share when it is None."""
        if self.photo_prob is not None:
            return float(self.photo_prob)
        return PHOTO_PROB if self.scenes == "photo" else LAYERS_PHOTO_PROB


def _range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """A kernel option's ``[low, high]`` range, checked."""
    bounds = tuple(float(v) for v in value)
    if len(bounds) != 2 or bounds[0] > bounds[1]:
        raise ValueError(f"kernel_options.{name} must be a number or [low, high], got {value}")
    return bounds


def draw_kernel_options(
    rng: np.random.Generator, options: Mapping[str, float | tuple[float, float]]
) -> dict[str, float]:
    """The scene's kernel options: ranges drawn uniformly (in the order given), numbers kept.
    Fixed options draw nothing, so they leave the scene's random stream as it was."""
    return {
        name: float(rng.uniform(*value)) if isinstance(value, tuple) else value
        for name, value in options.items()
    }


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def sample_camera(rng: np.random.Generator, settings: SceneSettings) -> ThinLensCamera:
    """The scene's camera: the base one with a random focus distance and f-number."""
    changes = {}
    if settings.focus_range_m is not None:
        changes["focus_distance_m"] = _log_uniform(rng, settings.focus_range_m)
    if settings.f_number_range is not None:
        changes["f_number"] = _log_uniform(rng, settings.f_number_range)
    return settings.camera.replace(**changes)


def sample_depths(
    rng: np.random.Generator, camera: ThinLensCamera, count: int, settings: SceneSettings
) -> list[float]:
    """``count`` depths, uniform in 1/d over the depths with |CoC| <= max_coc_px."""
    focus = camera.focus_distance_m
    ratio = settings.max_coc_px / camera.coc_scale_px
    low = max(1.0 / settings.depth_range_m[1], (1.0 - ratio) / focus)
    high = min(1.0 / settings.depth_range_m[0], (1.0 + ratio) / focus)
    inverse = rng.uniform(low, high, size=count)
    depths = [float(1.0 / q) for q in inverse]
    if count and rng.random() < settings.in_focus_prob:
        depths[int(rng.integers(0, count))] = focus
    return depths


def render_sample(
    rng_or_seed: np.random.Generator | int | Sequence[int],
    size: tuple[int, int] = (256, 256),
    settings: SceneSettings | None = None,
    bank: TextureBank | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Draw a random scene and render it: a dataset sample as numpy arrays.

    Args:
        rng_or_seed: a generator, or a seed (int or sequence of ints) to make one.
        size: (H, W) of the images.
        settings: scene distribution (default :class:`SceneSettings`); ``overrides``
            replace some of its fields (e.g. ``kernel="hard"``).
        bank: photographs for textures (default: the process's shared bank, loaded on
            first use).

    Returns:
        ``left``, ``right``, ``combined``, ``target`` (HxWx3 float32 in [0, 1], sample
        units: see the module docstring), ``depth`` (HxWx1, metres), ``coc`` (HxWx1,
        signed pixels), ``photon`` (the unclipped :class:`DPRender` in photon units) and
        ``meta`` (camera, layer depths, radii and names).
    """
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    else:
        rng = np.random.default_rng(np.random.SeedSequence(rng_or_seed))
    settings = settings or SceneSettings()
    if overrides:
        settings = replace(settings, **overrides)
    bank = bank if bank is not None else default_texture_bank()
    height, width = (int(s) for s in size)
    camera = sample_camera(rng, settings)
    kernel_options = draw_kernel_options(rng, settings.kernel_options)
    sigma_frac = float(kernel_options.get("sigma_frac", 0.1))
    if settings.scenes == "photo":
        near, far = coc_limits(camera, settings.max_coc_px, settings.depth_range_m)
        largest = max(abs(near), abs(far), 1.0)
        margin = 1 + kernel_half_size(largest, settings.kernel, sigma_frac)
        canvas = (height + 2 * margin, width + 2 * margin)
        layers = photo_layers(
            rng,
            canvas,
            camera,
            settings.max_coc_px,
            settings.depth_range_m,
            bank,
            settings.photo_share,
        )
    else:
        count = 1 + int(rng.integers(settings.num_layers[0], settings.num_layers[1] + 1))
        depths = sample_depths(rng, camera, count, settings)
        radii = [camera.coc_radius_px(d) for d in depths]
        margin = 1 + max(kernel_half_size(r, settings.kernel, sigma_frac) for r in radii)
        canvas = (height + 2 * margin, width + 2 * margin)
        layers = random_layers(rng, canvas, depths, bank, settings.photo_share)
    render = render_layers(
        layers,
        camera,
        settings.kernel,
        margin=margin,
        noise=settings.noise,
        rng=rng,
        kernel_options=kernel_options,
    )
    sample: dict[str, Any] = render.to_sample()
    sample["photon"] = render
    sample["meta"] = {
        "scenes": settings.scenes,
        "focus_distance_m": camera.focus_distance_m,
        "f_number": camera.f_number,
        "depths_m": [layer.depth for layer in layers],
        "coc_px": [camera.coc_radius_px(layer.depth) for layer in layers],
        "layers": [layer.name for layer in layers],
        "kernel_options": kernel_options,
    }
    return sample


# -- dataset --------------------------------------------------------------------------


class SyntheticDPDataset(Dataset):
    """Map-style dataset of synthetic DP samples rendered on the fly.

    Sample ``i`` is a pure function of ``(seed, split, epoch, i)``: its generator is
    ``np.random.default_rng(np.random.SeedSequence([seed, split_id(split), epoch, i]))``.
    :meth:`set_epoch` moves a training set to new scenes (one epoch = ``length`` fresh
    samples, an endless stream over epochs); val/test and other splits ignore it and stay
    at epoch 0, so they are fixed for a seed. No global RNG is used and the dataset pickles
    cheaply (each process loads the photographs once, on first use), so it works in
    DataLoader workers.

    Returned sample: ``left``, ``right``, ``combined``, ``target`` (3xHxW float32 in
    [0, 1]; views as bright as the target, ``combined = (left + right) / 2``), ``depth``
    (1xHxW, metres), ``coc`` (1xHxW, signed CoC radius in px of the visible surface: > 0
    behind the focal plane), ``name`` (``synth_<split>_<i:05d>``) and ``bit_depth`` (32).

    Args:
        length: samples per epoch.
        size: (H, W).
        seed: base seed (>= 0).
        split: split name ("train" streams new scenes per epoch).
        kernel: "soft" (RDPD-style) or "hard" (half-discs).
        camera: base :class:`ThinLensCamera` or a mapping of its fields.
        focus_range_m, f_number_range, depth_range_m, max_coc_px, num_layers,
            in_focus_prob, photo_prob, kernel_options, scenes: see :class:`SceneSettings`
            (``scenes``: "layers" or "photo").
        noise: :class:`SensorNoise`, a mapping ``{shot, read}``, or None (off).
        epoch: starting epoch (train only).
    """

    def __init__(
        self,
        length: int = 1000,
        size: Sequence[int] = (256, 256),
        seed: int = 0,
        split: str = "train",
        kernel: str = "soft",
        camera: ThinLensCamera | Mapping[str, float] | None = None,
        focus_range_m: Sequence[float] | None = (1.2, 4.0),
        f_number_range: Sequence[float] | None = (2.8, 5.6),
        depth_range_m: Sequence[float] = (0.5, 100.0),
        max_coc_px: float = 16.0,
        num_layers: Sequence[int] = (3, 5),
        in_focus_prob: float = 0.5,
        photo_prob: float | None = None,
        noise: SensorNoise | Mapping[str, float] | None = None,
        kernel_options: Mapping[str, float] | None = None,
        epoch: int = 0,
        scenes: str = "layers",
    ):
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.length = int(length)
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)
        self.split = str(split)
        self.settings = SceneSettings(
            camera=camera if camera is not None else ThinLensCamera(),
            focus_range_m=focus_range_m,
            f_number_range=f_number_range,
            depth_range_m=depth_range_m,
            max_coc_px=float(max_coc_px),
            num_layers=tuple(int(n) for n in num_layers),
            in_focus_prob=float(in_focus_prob),
            photo_prob=None if photo_prob is None else float(photo_prob),
            kernel=str(kernel),
            kernel_options=dict(kernel_options or {}),
            noise=noise,
            scenes=str(scenes),
        )
        self.bank: TextureBank | None = None  # None: the process's shared bank
        self.epoch = 0
        self.set_epoch(epoch)

    @property
    def streams(self) -> bool:
        """Whether :meth:`set_epoch` changes the scenes (training split only)."""
        return self.split == "train"

    def set_epoch(self, epoch: int) -> None:
        """Select the scenes of ``epoch`` (training split; ignored by val/test)."""
        if self.streams:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def seed_sequence(self, index: int) -> np.random.SeedSequence:
        """The seed of sample ``index`` at the current epoch."""
        return np.random.SeedSequence([self.seed, split_id(self.split), self.epoch, index])

    def render(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as numpy arrays (HxWxC), with ``photon`` and ``meta``."""
        index = self._check_index(index)
        rng = np.random.default_rng(self.seed_sequence(index))
        bank = self.bank if self.bank is not None else default_texture_bank()
        return render_sample(rng, self.size, self.settings, bank)

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return index

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        arrays = self.render(index)
        sample: dict[str, Any] = {
            key: torch.from_numpy(np.ascontiguousarray(arrays[key].transpose(2, 0, 1)))
            for key in (*SAMPLE_IMAGE_KEYS, "depth", "coc")
        }
        sample["name"] = f"synth_{self.split}_{index:05d}"
        sample["bit_depth"] = 32
        return sample
