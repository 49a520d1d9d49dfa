"""Thin-lens defocus and dual-pixel (DP) point-spread functions (docs/synthetic.md, "Image
formation").

Thin lens (DPANet paper, Sec. III-A, Fig. 2, eqs. 1-2): focal length ``l``, focus distance
``s``, aperture diameter ``a = l / N`` (N the f-number). A point at depth ``d`` images to a
circle of confusion (CoC) of signed radius

    r = a * l / (2 * (s - l)) * (1 - s / d)            (on the sensor, in mm)

converted to pixels by the pixel pitch. Behind the focal plane (d > s) r > 0, in front
(d < s) r < 0, at d = s it is 0; as d -> infinity r tends to ``a * l / (2 * (s - l))``.

DP kernels. Each photodiode of a DP pixel sees one half of the aperture. Per DPANet's Fig. 2,
for r > 0 a point's LEFT-view image is the RIGHT half of the disc of radius |r| and its
right-view image the left half; for r < 0 the two swap. So the left view is displaced to
the right of the right view behind the focal plane and to the left in front of it, and
the sign of the disparity tells front from behind. Two kernel models:

* ``"hard"``: anti-aliased half-discs. Pixel coverage of the disc is approximated by
  ``clip(|r| + 0.5 - rho, 0, 1)`` (rho: distance of the pixel centre from the kernel
  centre), which is continuous in |r|. The centre column (x = 0) is cut by the split line
  through its middle, so it is shared equally: weight 1/2 of its coverage in each view.
  Centroid of a continuous half-disc: 4|r| / (3 pi) from the centre, so the two views'
  centroids are 8|r| / (3 pi) = 0.4244 x the blur diameter apart.
* ``"soft"``: RDPD-style (Abuolaim et al., ICCV 2021). The same disc weighted by a radial
  Butterworth profile ``1 / (1 + (rho / (c |r|))^(2n))`` and by a linear horizontal ramp
  ``clip(1/2 + x / (2 w |r|), 0, 1)`` (its mirror for the other view; the two ramps sum to
  1; ``w = ramp_width``, 1 by default: the ramp spans the disc; smaller: a sharper split),
  then smoothed by a small Gaussian of sigma ``sigma_frac * |r|``. Centroids are closer
  together than for half-discs (about |r| / 2 apart before the Butterworth weighting).
  The constants (n, c, sigma_frac) are ours, chosen to look like measured DP PSFs, not
  fitted to a camera.

Every kernel pair satisfies, exactly: ``kR == kL[:, ::-1]`` (bit for bit: the right kernel
is built as the mirror of the left), each sums to 1/2 (each view gets half the light), so
``kL + kR`` is the full defocus kernel and the combined image is ``L + R``. In focus
(|r| <= 0.5 px) both kernels are the 1x1 delta ``[[0.5]]``; the disc model reaches that
delta continuously, so blur is continuous in depth.

Kernels are point-spread functions indexed ``k[y, x]`` with the centre at
``(k.shape[0] // 2, k.shape[1] // 2)``; x grows to the right. Apply them as convolutions
(:func:`dpdeblur.data.synthetic.convolve_psf`): a correlation such as ``cv2.filter2D``
would need the kernel flipped first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

KERNEL_KINDS = ("hard", "soft")
IN_FOCUS_RADIUS_PX = 0.5


@dataclass(frozen=True)
class ThinLensCamera:
    """A thin-lens camera with a DP sensor (DPANet eq. 2).

    Defaults (how they were chosen): a 50 mm lens at f/4 focused at 2 m, the kind of
    portrait setting DPDD was shot with on a Canon 5D Mark IV. Its DP photosites are
    5.36 um; we take a 2x2-binned pitch of 10.72 um so that the blur fits the small images
    we train and test on (a 256x256 image is then a 2.7 mm square crop of the sensor). At
    these settings the CoC radius is 14.95 px for a background at infinity, +5 px at 3 m,
    -3.7 px at 1.6 m and -10 px at 1.2 m: a few to ~15 px, as DPDD's blur looks after
    DPDD-scale crops are shrunk to 256 px.

    Attributes:
        focal_length_mm: focal length l.
        f_number: N; the aperture diameter is a = l / N.
        focus_distance_m: s, distance of the plane in focus.
        pixel_pitch_um: sensor pixel pitch (one DP pixel, both photodiodes).
    """

    focal_length_mm: float = 50.0
    f_number: float = 4.0
    focus_distance_m: float = 2.0
    pixel_pitch_um: float = 10.72

    def __post_init__(self) -> None:
        if self.focal_length_mm <= 0 or self.f_number <= 0 or self.pixel_pitch_um <= 0:
            raise ValueError(f"camera parameters must be positive: {self}")
        if self.focus_distance_m * 1000.0 <= self.focal_length_mm:
            raise ValueError(
                f"focus distance {self.focus_distance_m} m must exceed the focal length "
                f"{self.focal_length_mm} mm"
            )

    @property
    def aperture_mm(self) -> float:
        """Aperture diameter a = l / N, in mm."""
        return self.focal_length_mm / self.f_number

    @property
    def coc_scale_px(self) -> float:
        """``a * l / (2 * (s - l))`` in pixels: the CoC radius at infinite depth."""
        s_mm = self.focus_distance_m * 1000.0
        scale_mm = self.aperture_mm * self.focal_length_mm / (2.0 * (s_mm - self.focal_length_mm))
        return scale_mm * 1000.0 / self.pixel_pitch_um

    def coc_radius_px(self, depth_m: float | np.ndarray) -> float | np.ndarray:
        """Signed CoC radius in pixels at depth ``depth_m`` (metres): > 0 behind focus."""
        depth = np.asarray(depth_m, dtype=np.float64)
        if np.any(depth <= 0):
            raise ValueError("depths must be positive (metres)")
        radius = self.coc_scale_px * (1.0 - self.focus_distance_m / depth)
        return float(radius) if radius.ndim == 0 else radius

    def depth_for_coc(self, radius_px: float | np.ndarray) -> float | np.ndarray:
        """Inverse of :meth:`coc_radius_px`: the depth (m) whose signed CoC is ``radius_px``.

        Radii at or beyond :attr:`coc_scale_px` have no finite depth (``inf`` is returned).
        """
        radius = np.asarray(radius_px, dtype=np.float64)
        inverse_depth = (1.0 - radius / self.coc_scale_px) / self.focus_distance_m
        with np.errstate(divide="ignore"):
            depth = np.where(inverse_depth > 0, 1.0 / np.maximum(inverse_depth, 1e-300), np.inf)
        return float(depth) if depth.ndim == 0 else depth

    def replace(self, **changes: float) -> ThinLensCamera:
        """A copy with some parameters changed (e.g. a new focus distance)."""
        return replace(self, **changes)


def kernel_half_size(radius_px: float, kind: str = "hard", sigma_frac: float = 0.1) -> int:
    """Half width h of the (2h+1)x(2h+1) kernel for a signed radius (0 when in focus)."""
    radius = abs(float(radius_px))
    if radius <= IN_FOCUS_RADIUS_PX:
        return 0
    extent = radius + 0.5
    if kind == "soft":
        extent += 3.0 * sigma_frac * radius
    return math.ceil(extent)


def _grid(half: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel offsets (y, x) of a (2h+1)^2 kernel, as float64 (exactly symmetric)."""
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    return np.meshgrid(offsets, offsets, indexing="ij")


def disc_coverage(radius_px: float, half: int) -> np.ndarray:
    """Anti-aliased disc of radius |r|: ``clip(|r| + 0.5 - rho, 0, 1)`` per pixel."""
    y, x = _grid(half)
    rho = np.sqrt(x * x + y * y)
    return np.clip(abs(radius_px) + 0.5 - rho, 0.0, 1.0)


def _right_half_hard(radius: float) -> np.ndarray:
    """Right half (x >= 0) of the anti-aliased disc; centre column at half weight."""
    half = kernel_half_size(radius, "hard")
    coverage = disc_coverage(radius, half)
    _, x = _grid(half)
    side = np.where(x > 0, 1.0, np.where(x == 0, 0.5, 0.0))
    return coverage * side


def _gaussian_1d(sigma: float, half: int) -> np.ndarray:
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _right_leaning_soft(
    radius: float,
    butterworth_order: float,
    butterworth_cutoff: float,
    sigma_frac: float,
    ramp_width: float = 1.0,
) -> np.ndarray:
    """RDPD-style kernel leaning right: disc x Butterworth x ramp, then Gaussian smoothing."""
    half = kernel_half_size(radius, "soft", sigma_frac)
    y, x = _grid(half)
    rho = np.sqrt(x * x + y * y)
    coverage = np.clip(radius + 0.5 - rho, 0.0, 1.0)
    profile = 1.0 / (1.0 + (rho / (butterworth_cutoff * radius)) ** (2 * butterworth_order))
    ramp = np.clip(0.5 + x / (2.0 * ramp_width * radius), 0.0, 1.0)
    kernel = coverage * profile * ramp
    sigma = sigma_frac * radius
    if sigma > 0.05:
        gauss = _gaussian_1d(sigma, half)
        kernel = cv2.sepFilter2D(kernel, -1, gauss, gauss, borderType=cv2.BORDER_CONSTANT)
    return kernel


def dp_kernels(
    radius_px: float,
    kind: str = "hard",
    *,
    butterworth_order: float = 3,
    butterworth_cutoff: float = 0.8,
    sigma_frac: float = 0.1,
    ramp_width: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right DP point-spread functions for a signed CoC radius (pixels).

    Returns ``(kL, kR)``, float32, square with odd size, each summing to 1/2, with
    ``kR == kL[:, ::-1]`` exactly. For r > 0 the left kernel holds the right half of the
    disc; for r < 0 the left half. In focus (|r| <= 0.5) both are ``[[0.5]]``.

    Args:
        radius_px: signed CoC radius from :meth:`ThinLensCamera.coc_radius_px`.
        kind: "hard" (half-discs) or "soft" (RDPD-style, see the module docstring).
        butterworth_order, butterworth_cutoff, sigma_frac, ramp_width: shape of the soft
            kernel (order n, cutoff c as a fraction of |r|, Gaussian sigma as a fraction of
            |r|, width of the views' split ramp as a fraction of |r|).
    """
    if kind not in KERNEL_KINDS:
        raise ValueError(f"unknown DP kernel kind {kind!r}; use one of {KERNEL_KINDS}")
    radius = float(radius_px)
    if not math.isfinite(radius):
        raise ValueError(f"CoC radius must be finite, got {radius_px}")
    if abs(radius) <= IN_FOCUS_RADIUS_PX:
        delta = np.full((1, 1), 0.5, dtype=np.float32)
        return delta, delta.copy()
    if kind == "hard":
        leaning_right = _right_half_hard(abs(radius))
    else:
        if ramp_width <= 0:
            raise ValueError(f"ramp_width must be positive, got {ramp_width}")
        leaning_right = _right_leaning_soft(
            abs(radius), butterworth_order, butterworth_cutoff, sigma_frac, ramp_width
        )
    leaning_right = (leaning_right * (0.5 / leaning_right.sum())).astype(np.float32)
    left = leaning_right if radius > 0 else np.ascontiguousarray(leaning_right[:, ::-1])
    right = np.ascontiguousarray(left[:, ::-1])
    return left, right


def kernel_centroid(kernel: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of a kernel relative to its centre pixel, in pixels."""
    kernel = np.asarray(kernel, dtype=np.float64)
    half_y, half_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    y, x = np.mgrid[-half_y : half_y + 1, -half_x : half_x + 1]
    total = kernel.sum()
    return float((kernel * x).sum() / total), float((kernel * y).sum() / total)


def dp_disparity_px(radius_px: float, kind: str = "hard", **options: float) -> float:
    """Signed horizontal shift of the left kernel's centroid relative to the right's."""
    left, right = dp_kernels(radius_px, kind, **options)
    return kernel_centroid(left)[0] - kernel_centroid(right)[0]
