"""Random layered scenes for synthetic DP data: textures, alpha masks and depths.

The ``layers`` scene family (:func:`random_layers`): a background layer (opaque) and a few
foreground layers, each a colour texture with an alpha mask (random blobs, polygons,
rectangles, ellipses) at one depth: layers are fronto-parallel planes (no slant), which
keeps each layer's defocus kernel constant so one convolution per layer and view renders it
exactly (:mod:`dpdeblur.data.synthetic`). A :class:`Layer` may instead carry a per-pixel
depth map (a slanted plane: a ground or a receding wall); the ``photo`` family
(:mod:`dpdeblur.data.photo_scenes`) builds its scenes with them.

Textures mix real photographs with procedural patterns. The photographs are the sample
images that scikit-image ships inside its wheel (``skimage/data/*.png|jpg``); they are read
straight from the installed package with OpenCV, so nothing is ever fetched (scikit-image's
own ``skimage.data`` loaders may try a download for images it does not ship). If none can be
read, scenes fall back to procedural textures only, with one warning. Procedural textures:
multi-scale value noise, stripes, rotated checkerboards, colour gradients and dots. Photos
get random crops, scales, flips and colour jitter; greyscale photos are tinted.

All randomness comes from the ``numpy.random.Generator`` passed in (no global RNG), so a
scene is a pure function of the generator's seed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Sample photographs shipped inside scikit-image's wheel (checked offline, skimage 0.26):
# sharp, textured, natural. Left out: motion-blurred (clock_motion), mostly black
# (hubble_deep_field, retina), synthetic or binary (color, logo, horse, chessboard_*, phantom),
# and page.png (its broken ICC profile makes libpng print a warning on every load).
COLOUR_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
)
GREY_PHOTOS = (
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
    "text.png",
)
PROCEDURAL_KINDS = ("noise", "stripes", "checker", "gradient", "dots")
SCENE_FAMILIES = ("layers", "photo")
MASK_KINDS = ("blob", "polygon", "rectangle", "ellipse")
MAX_PHOTO_SIDE = 768


@dataclass
class Layer:
    """One scene surface: a fronto-parallel plane, or a slanted one with a depth map.

    Attributes:
        texture: HxWx3 float32 colour in [0, 1] (not premultiplied).
        alpha: HxW float32 coverage in [0, 1] (1 everywhere for the background).
        depth: distance from the lens in metres; with ``depth_map``, the surface's farthest
            depth, which orders it among the layers (composited far to near).
        name: what made it (for debugging and docs), e.g. "photo:coffee.png" or "stripes".
        depth_map: None (the layer is at ``depth`` everywhere), or HxW float32 metres for a
            surface whose depth varies across the image (defined on the whole canvas, also
            where ``alpha`` is 0; rendered by :func:`dpdeblur.data.synthetic.render_layers`
            with blur levels blended per pixel).
    """

    texture: np.ndarray
    alpha: np.ndarray
    depth: float
    name: str = ""
    depth_map: np.ndarray | None = None


def skimage_data_dir() -> Path | None:
    """The folder of scikit-image's bundled sample images, without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def _load_photo(path: Path) -> np.ndarray | None:
    """RGB float32 in [0, 1], longest side at most MAX_PHOTO_SIDE; None if unreadable."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8-bit BGR, grey expanded to 3 channels
    if pixels is None or pixels.size == 0 or min(pixels.shape[:2]) < 64:
        return None
    scale = MAX_PHOTO_SIDE / max(pixels.shape[:2])
    if scale < 1.0:
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


class TextureBank:
    """The photographs scenes may use, loaded lazily once per process.

    Picklable and cheap to pickle: the loaded pixels are dropped when it is sent to a
    data-loader worker, which loads them again on first use.

    Args:
        folder: where to find the photos (default: scikit-image's bundled data folder).
        names: file names to try (default: :data:`COLOUR_PHOTOS` + :data:`GREY_PHOTOS`).
    """

    def __init__(self, folder: str | Path | None = None, names: Sequence[str] | None = None):
        self.folder = None if folder is None else Path(folder)
        self.names = tuple(names) if names is not None else COLOUR_PHOTOS + GREY_PHOTOS
        self._photos: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_photos"] = None
        return state

    @property
    def photos(self) -> dict[str, np.ndarray]:
        """Name -> RGB float32 image, for every photo that could be read (maybe none)."""
        if self._photos is None:
            folder = self.folder if self.folder is not None else skimage_data_dir()
            photos: dict[str, np.ndarray] = {}
            if folder is not None:
                for name in self.names:
                    image = _load_photo(folder / name)
                    if image is not None:
                        photos[name] = image
            if not photos:
                warnings.warn(
                    f"no sample photographs could be read from {folder}; synthetic scenes "
                    "use procedural textures only",
                    stacklevel=2,
                )
            self._photos = photos
        return self._photos


@functools.lru_cache(maxsize=1)
def default_texture_bank() -> TextureBank:
    """One shared :class:`TextureBank` per process (created on first call, read-only use)."""
    return TextureBank()


# -- procedural textures --------------------------------------------------------------


def _random_colour(rng: np.random.Generator, low: float = 0.05, high: float = 0.9) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def _two_tone(rng: np.random.Generator, pattern: np.ndarray) -> np.ndarray:
    """Map a pattern in [0, 1] (HxW) to a mix of two random colours (HxWx3)."""
    first, second = _random_colour(rng), _random_colour(rng)
    pattern = pattern[:, :, None].astype(np.float32)
    return first * (1.0 - pattern) + second * pattern


def _coords(shape: tuple[int, int], angle: float) -> np.ndarray:
    """Pixel coordinate along direction ``angle`` (radians), HxW float32."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return x * math.cos(angle) + y * math.sin(angle)


def value_noise(rng: np.random.Generator, shape: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Sum of random grids upsampled (bicubic) from several scales; [0, 1], HxWxC."""
    height, width = shape
    total = np.zeros((height, width, channels), np.float32)
    weight_sum = 0.0
    for cell in (64, 24, 8, 3, 1):
        if rng.random() < 0.25 and cell != 1:
            continue
        grid = rng.random((height // cell + 2, width // cell + 2, channels), dtype=np.float32)
        big = cv2.resize(grid, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
        big = big.reshape(big.shape[0], big.shape[1], channels)
        weight = cell**0.5
        total += weight * big[cell : cell + height, cell : cell + width]
        weight_sum += weight
    total /= weight_sum
    low, high = np.percentile(total, (1, 99))
    return np.clip((total - low) / max(high - low, 1e-6), 0.0, 1.0)


def noise_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Coloured multi-scale noise: a two-colour mix modulated by per-channel noise."""
    grey = value_noise(rng, shape, 1)[:, :, 0]
    colour = value_noise(rng, shape, 3)
    base = _two_tone(rng, grey)
    return np.clip(0.75 * base + 0.25 * colour, 0.0, 1.0)


def stripes_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Sinusoidal or square-wave stripes at a random angle and period (3-40 px)."""
    period = math.exp(rng.uniform(math.log(3.0), math.log(40.0)))
    phase = _coords(shape, rng.uniform(0, math.pi)) * (2 * math.pi / period) + rng.uniform(0, 6.3)
    wave = 0.5 + 0.5 * np.sin(phase)
    if rng.random() < 0.5:
        wave = np.clip((wave - 0.5) * 8.0 + 0.5, 0.0, 1.0)  # nearly square, anti-aliased
    return _two_tone(rng, wave)


def checker_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A checkerboard of random square size (4-40 px), rotated by a random angle."""
    size = rng.uniform(4.0, 40.0)
    angle = rng.uniform(0, math.pi / 2)
    u = _coords(shape, angle) / size
    v = _coords(shape, angle + math.pi / 2) / size
    # Smooth square waves (slope limited to ~2 px) so edges are anti-aliased.
    sharp = max(size / 2.0, 1.0)
    wave_u = np.clip(np.sin(math.pi * u) * sharp, -1, 1)
    wave_v = np.clip(np.sin(math.pi * v) * sharp, -1, 1)
    return _two_tone(rng, 0.5 + 0.5 * wave_u * wave_v)


def gradient_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A linear colour gradient with light noise on top (so it is not flat)."""
    ramp = _coords(shape, rng.uniform(0, 2 * math.pi))
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    base = _two_tone(rng, ramp)
    return np.clip(base + 0.15 * (value_noise(rng, shape, 3) - 0.5), 0.0, 1.0)


def dots_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Random anti-aliased discs of several sizes and colours on a flat colour.

    Drawn in 8 bits (OpenCV anti-aliases only 8-bit images), like the photographs.
    """
    height, width = shape
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.round(_random_colour(rng) * 255).astype(np.uint8)
    count = int(rng.integers(20, 120) * height * width / 256**2) + 5
    for _ in range(count):
        centre = (int(rng.integers(0, width) * 16), int(rng.integers(0, height) * 16))
        radius = int(rng.uniform(1.5, 14.0) * 16)
        colour = tuple(round(float(c) * 255) for c in _random_colour(rng))
        cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA, shift=4)
    return image.astype(np.float32) / 255.0


PROCEDURAL = {
    "noise": noise_texture,
    "stripes": stripes_texture,
    "checker": checker_texture,
    "gradient": gradient_texture,
    "dots": dots_texture,
}


# -- photographs ----------------------------------------------------------------------


def photo_texture(
    rng: np.random.Generator, shape: tuple[int, int], photo: np.ndarray, grey: bool
) -> np.ndarray:
    """A random crop of ``photo`` at a random scale (0.6-1.4), flipped and colour-jittered.

    Crops larger than the photo are mirror-padded. Grey photos are tinted by a random
    colour; colour photos get per-channel gains, a saturation change and a gamma.
    """
    height, width = shape
    scale = math.exp(rng.uniform(math.log(0.6), math.log(1.4)))
    crop_h, crop_w = math.ceil(height / scale), math.ceil(width / scale)
    pad_y = max(0, crop_h - photo.shape[0])
    pad_x = max(0, crop_w - photo.shape[1])
    if pad_y or pad_x:
        photo = cv2.copyMakeBorder(photo, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    top = int(rng.integers(0, photo.shape[0] - crop_h + 1))
    left = int(rng.integers(0, photo.shape[1] - crop_w + 1))
    crop = photo[top : top + crop_h, left : left + crop_w]
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    image = cv2.resize(crop, (width, height), interpolation=interpolation)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = image[::-1]
    if grey:
        tint = rng.uniform(0.55, 1.0, size=3).astype(np.float32)
        image = image.mean(axis=2, keepdims=True) * tint
    else:
        saturation = rng.uniform(0.6, 1.3)
        mean = image.mean(axis=2, keepdims=True)
        image = mean + saturation * (image - mean)
        image = image * rng.uniform(0.8, 1.15, size=3).astype(np.float32)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    return np.ascontiguousarray(np.clip(image * 0.95 + 0.02, 0.0, 1.0), dtype=np.float32)


def random_texture(
    rng: np.random.Generator,
    shape: tuple[int, int],
    bank: TextureBank | None = None,
    photo_prob: float = 0.5,
) -> tuple[np.ndarray, str]:
    """A random texture (HxWx3 float32 in [0, 1]) and its name: a photo or a procedural one."""
    photos = bank.photos if bank is not None and photo_prob > 0 else {}
    if photos and rng.random() < photo_prob:
        names = sorted(photos)
        name = names[int(rng.integers(0, len(names)))]
        return photo_texture(rng, shape, photos[name], name in GREY_PHOTOS), f"photo:{name}"
    kind = PROCEDURAL_KINDS[int(rng.integers(0, len(PROCEDURAL_KINDS)))]
    texture = PROCEDURAL[kind](rng, shape)
    return np.ascontiguousarray(texture, dtype=np.float32), kind


# -- alpha masks ----------------------------------------------------------------------


def _polygon(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    count = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * math.pi, count))
    radii = radius * rng.uniform(0.5, 1.0, count)
    points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    return np.round(points * 16).astype(np.int32)


def random_mask(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """An anti-aliased alpha mask (HxW float32 in [0, 1]) of a random shape, and its kind.

    Shapes span 15-60 % of the image's shorter side; a mask holds one to three shapes of
    one kind. Blobs are thresholded smooth noise (soft-edged over about a pixel).
    """
    height, width = shape
    kind = MASK_KINDS[int(rng.integers(0, len(MASK_KINDS)))]
    if kind == "blob":
        cell = max(8, int(min(shape) * rng.uniform(0.08, 0.25)))
        grid = rng.random((height // cell + 3, width // cell + 3), dtype=np.float32)
        field = cv2.resize(
            grid, (width + 3 * cell, height + 3 * cell), interpolation=cv2.INTER_CUBIC
        )
        field = field[cell : cell + height, cell : cell + width]
        threshold = np.quantile(field, 1.0 - rng.uniform(0.15, 0.45))
        gy, gx = np.gradient(field)
        slope = np.sqrt(gx * gx + gy * gy) + 1e-6
        return np.clip(0.5 + (field - threshold) / slope, 0.0, 1.0).astype(np.float32), kind
    mask = np.zeros(shape, np.uint8)  # OpenCV anti-aliases only 8-bit images
    side = min(shape)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform((0.0, 0.0), (width, height))
        radius = side * rng.uniform(0.15, 0.6) / 2.0
        if kind == "polygon":
            cv2.fillPoly(mask, [_polygon(rng, centre, radius)], 255, cv2.LINE_AA, shift=4)
        elif kind == "rectangle":
            box = cv2.boxPoints(
                (tuple(centre), tuple(radius * rng.uniform(0.6, 2.0, 2)), rng.uniform(0, 90))
            )
            cv2.fillPoly(mask, [np.round(box * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        else:
            axes = tuple(int(a * 16) for a in radius * rng.uniform(0.5, 1.0, 2))
            centre_fixed = tuple(int(c * 16) for c in centre)
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(mask, centre_fixed, axes, angle, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0, kind


# -- scenes ---------------------------------------------------------------------------


def random_layers(
    rng: np.random.Generator,
    shape: tuple[int, int],
    depths: Sequence[float],
    bank: TextureBank | None = None,
    photo_prob: float = 0.5,
) -> list[Layer]:
    """A scene: one layer per depth, ordered far to near; the farthest is the opaque background.

    Args:
        rng: the only source of randomness.
        shape: (H, W) of every layer (the canvas, margins included).
        depths: metres, any order; they are sorted far to near.
        bank: photographs to draw textures from (None: procedural only).
        photo_prob: chance that a layer's texture is a photograph (when any loaded).
    """
    ordered = sorted((float(d) for d in depths), reverse=True)
    layers = []
    for index, depth in enumerate(ordered):
        texture, texture_name = random_texture(rng, shape, bank, photo_prob)
        if index == 0:
            alpha = np.ones(shape, np.float32)
            name = f"background/{texture_name}"
        else:
            alpha, mask_kind = random_mask(rng, shape)
            name = f"{mask_kind}/{texture_name}"
        layers.append(Layer(texture=texture, alpha=alpha, depth=depth, name=name))
    return layers
