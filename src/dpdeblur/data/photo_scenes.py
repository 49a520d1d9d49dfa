"""The ``photo`` scene family: synthetic DP scenes built like photographs.

Where the ``layers`` family (:func:`dpdeblur.data.scenes.random_layers`) stacks random
shapes at random depths, a ``photo`` scene is composed the way a shallow-depth-of-field
photograph is (docs/synthetic.md, "Scene families"):

* a **background** far behind the focal plane: an opaque plane, fronto-parallel or
  receding to one side (a wall seen at an angle), blurred most;
* a **ground plane** (in most scenes) from the bottom of the frame, usually in front of the
  focal plane, to a horizon far behind it. A plane's inverse depth is affine in the image
  coordinates, and so is its CoC radius (the radius is affine in 1/d), so the ground's
  radius grows linearly from the bottom row to the horizon: the depth increases towards
  the top. Its texture is warped in perspective (foreshortened towards the horizon);
* one or two **subjects** near the focal plane (|CoC| <= 0.6 px, half of them exactly in
  focus) standing on the ground where the ground's depth equals theirs;
* a few **objects** standing on the ground at other depths, scaled with their distance;
* **occluders** in front of the focal plane entering from the frame's edges (branches,
  a pole, a corner of foliage), blurred with negative radii.

Textures are mostly the photographs of :class:`~dpdeblur.data.scenes.TextureBank` (cut,
scaled, flipped, colour-jittered; :data:`PHOTO_PROB` of them), the rest procedural. Scenes
are drawn in CoC space (pixels) within the limits the camera allows for
``depth_range_m`` and ``max_coc_px`` (:func:`coc_limits`), then turned into depths by the
thin lens, so the layers' depths and the camera stay physical.

All randomness comes from the generator passed in; no draw depends on a computed pixel
value (docs/data.md, "What 'deterministic' means").
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dpdeblur.data.optics import ThinLensCamera
from dpdeblur.data.scenes import Layer, TextureBank, random_texture, value_noise

PHOTO_PROB = 0.8  # share of textures that are photographs in this family
GROUND_PROB = 0.8  # share of scenes with a ground plane
SUBJECT_KINDS = ("figure", "ellipse", "superellipse", "blob", "polygon")
OCCLUDER_KINDS = ("branch", "pole", "corner")
SUBJECT_MAX_COC_PX = 0.6  # subjects sit within this radius of the focal plane


def coc_limits(
    camera: ThinLensCamera, max_coc_px: float, depth_range_m: tuple[float, float]
) -> tuple[float, float]:
    """The most negative and the most positive CoC radius (pixels) a scene may use: within
    ``max_coc_px`` and reachable at depths inside ``depth_range_m`` for this camera."""
    nearest = float(camera.coc_radius_px(depth_range_m[0]))
    farthest = float(camera.coc_radius_px(depth_range_m[1]))
    return max(-max_coc_px, nearest), min(max_coc_px, farthest)


def _depth(camera: ThinLensCamera, radius: float | np.ndarray) -> float | np.ndarray:
    """Depth (m) of a CoC radius; radii here are always below the camera's limit."""
    return camera.depth_for_coc(radius)


# -- masks ------------------------------------------------------------------------------

_SHIFT = 4  # OpenCV's fixed-point drawing: coordinates in 1/16 px, anti-aliased edges
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32)


def _ellipse(mask: np.ndarray, centre, axes, angle: float = 0.0) -> None:
    cv2.ellipse(
        mask,
        tuple(int(v) for v in _fixed(centre)),
        tuple(max(1, int(v)) for v in _fixed(axes)),
        float(angle),
        0,
        360,
        255,
        -1,
        cv2.LINE_AA,
        shift=_SHIFT,
    )


def _fill(mask: np.ndarray, points: np.ndarray) -> None:
    cv2.fillPoly(mask, [_fixed(points)], 255, cv2.LINE_AA, shift=_SHIFT)


def subject_mask(
    rng: np.random.Generator,
    shape: tuple[int, int],
    centre_x: float,
    bottom_y: float,
    height: float,
    width: float,
) -> tuple[np.ndarray, str]:
    """An anti-aliased silhouette (HxW float32 in [0, 1]) standing on row ``bottom_y``.

    Kinds: a figure (body and head), an ellipse, a superellipse (a vase, a box with round
    corners), a blob (smooth noise thresholded inside an ellipse) or a polygon.
    """
    kind = SUBJECT_KINDS[int(rng.integers(0, len(SUBJECT_KINDS)))]
    mask = np.zeros(shape, np.uint8)
    middle_y = bottom_y - height / 2.0
    if kind == "figure":
        head = 0.13 * height
        body_height = height - 2.0 * head
        _ellipse(mask, (centre_x, bottom_y - body_height / 2.0), (width / 2.0, body_height / 2.0))
        neck_y = bottom_y - body_height
        _fill(
            mask,
            np.array(
                [
                    [centre_x - 0.3 * head, neck_y + 0.2 * head],
                    [centre_x + 0.3 * head, neck_y + 0.2 * head],
                    [centre_x + 0.3 * head, neck_y - 0.5 * head],
                    [centre_x - 0.3 * head, neck_y - 0.5 * head],
                ]
            ),
        )
        _ellipse(mask, (centre_x, neck_y - head), (0.8 * head, head))
    elif kind == "ellipse":
        _ellipse(mask, (centre_x, middle_y), (width / 2.0, height / 2.0), rng.uniform(-15, 15))
    elif kind == "superellipse":
        power = rng.uniform(2.5, 6.0)
        angles = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
        cos, sin = np.cos(angles), np.sin(angles)
        x = np.sign(cos) * np.abs(cos) ** (2.0 / power) * width / 2.0 + centre_x
        y = np.sign(sin) * np.abs(sin) ** (2.0 / power) * height / 2.0 + middle_y
        _fill(mask, np.stack([x, y], axis=1))
    elif kind == "polygon":
        count = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * math.pi, count))
        radii = rng.uniform(0.7, 1.0, count)
        x = centre_x + np.cos(angles) * radii * width / 2.0
        y = middle_y + np.sin(angles) * radii * height / 2.0
        _fill(mask, np.stack([x, y], axis=1))
    else:  # blob: smooth noise inside an elliptic envelope, soft over about a pixel
        cell = max(4, int(min(width, height) * rng.uniform(0.15, 0.3)))
        rows, cols = shape[0] // cell + 3, shape[1] // cell + 3
        grid = rng.random((rows, cols), dtype=np.float32)
        field = cv2.resize(grid, (cols * cell, rows * cell), interpolation=cv2.INTER_CUBIC)
        field = field[: shape[0], : shape[1]]
        y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        envelope = ((x - centre_x) / (width / 2.0)) ** 2 + ((y - middle_y) / (height / 2.0)) ** 2
        level = 1.0 - envelope + 0.6 * (field - 0.5)
        gy, gx = np.gradient(level)
        slope = np.sqrt(gx * gx + gy * gy) + 1e-6
        return np.clip(0.5 + level / slope, 0.0, 1.0).astype(np.float32), kind
    return mask.astype(np.float32) / 255.0, kind


def occluder_mask(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A near occluder entering from the frame's edge: a branch with twigs, a pole, or a
    corner of foliage (HxW float32 in [0, 1])."""
    height, width = shape
    side = min(shape)
    kind = OCCLUDER_KINDS[int(rng.integers(0, len(OCCLUDER_KINDS)))]
    mask = np.zeros(shape, np.uint8)
    if kind == "branch":
        edge = int(rng.integers(0, 4))
        start = {
            0: (rng.uniform(0, width), -side * 0.05),
            1: (width + side * 0.05, rng.uniform(0, height)),
            2: (rng.uniform(0, width), height + side * 0.05),
            3: (-side * 0.05, rng.uniform(0, height)),
        }[edge]
        heading = {0: 0.5, 1: 1.0, 2: 1.5, 3: 0.0}[edge] * math.pi + rng.uniform(-0.6, 0.6)
        thickness = side * rng.uniform(0.03, 0.09)
        points = [np.array(start)]
        for _ in range(int(rng.integers(2, 5))):
            heading += rng.uniform(-0.5, 0.5)
            step = side * rng.uniform(0.15, 0.35)
            points.append(points[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
        for index in range(len(points) - 1):
            share = 1.0 - 0.5 * index / len(points)  # the branch thins towards its tip
            cv2.line(
                mask,
                tuple(int(v) for v in _fixed(points[index])),
                tuple(int(v) for v in _fixed(points[index + 1])),
                255,
                max(1, round(thickness * share)),
                cv2.LINE_AA,
                shift=_SHIFT,
            )
            if rng.random() < 0.5:  # a twig
                angle = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
                tip = points[index] + side * rng.uniform(0.08, 0.2) * np.array(
                    [math.cos(angle), math.sin(angle)]
                )
                cv2.line(
                    mask,
                    tuple(int(v) for v in _fixed(points[index])),
                    tuple(int(v) for v in _fixed(tip)),
                    255,
                    max(1, round(0.45 * thickness * share)),
                    cv2.LINE_AA,
                    shift=_SHIFT,
                )
    elif kind == "pole":
        half = width * rng.uniform(0.03, 0.08)
        centre = width * (rng.uniform(0.0, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 1.0))
        lean = width * rng.uniform(-0.08, 0.08)
        _fill(
            mask,
            np.array(
                [
                    [centre - half - lean, -2.0],
                    [centre + half - lean, -2.0],
                    [centre + half + lean, height + 2.0],
                    [centre - half + lean, height + 2.0],
                ]
            ),
        )
    else:  # corner: foliage, a smooth-noise edge around a corner of the frame
        corner_x = 0.0 if rng.random() < 0.5 else float(width)
        corner_y = 0.0 if rng.random() < 0.5 else float(height)
        radius = side * rng.uniform(0.25, 0.5)
        noise = value_noise(rng, shape, 1)[:, :, 0]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        distance = np.sqrt((x - corner_x) ** 2 + (y - corner_y) ** 2)
        level = radius * (1.0 + 0.5 * (noise - 0.5)) - distance
        return np.clip(0.5 + level, 0.0, 1.0).astype(np.float32), kind
    return mask.astype(np.float32) / 255.0, kind


# -- the ground -------------------------------------------------------------------------


def _ground_texture(
    rng: np.random.Generator,
    shape: tuple[int, int],
    horizon: float,
    bank: TextureBank | None,
    photo_prob: float,
) -> tuple[np.ndarray, str]:
    """A texture laid on the ground in perspective: at the bottom row one texture pixel per
    image column and 1-1.6 texture rows per image row (foreshortened), shrinking with the
    inverse depth towards the horizon. The texture's own far-to-near depth ratio is
    1.3-2.2, milder than the scene's (far rows stay legible), and far rows are sampled from
    a 2x2 and 4x4 reduced copy (a mip map), so the sharp target does not alias."""
    height, width = shape
    ratio = rng.uniform(0.45, 0.75)  # inverse depth at the horizon / at the bottom row
    slant = rng.uniform(1.0, 1.6)  # texture rows per image row at the bottom row
    span = max(height - horizon, 1.0)
    gain = slant * span / (1.0 - ratio)  # texture rows per unit of relative depth
    texture_size = (math.ceil(gain * (1.0 / ratio - 1.0)) + 4, math.ceil(width / ratio) + 4)
    flat, name = random_texture(rng, texture_size, bank, photo_prob)
    rows = np.arange(height, dtype=np.float32)
    inverse = ratio + (1.0 - ratio) * np.clip((rows - horizon) / span, 0.0, 1.0)
    v = (texture_size[0] - 2) - gain * (1.0 / inverse - 1.0)
    x = np.arange(width, dtype=np.float32)
    u = texture_size[1] / 2.0 + (x[None, :] - width / 2.0) / inverse[:, None]
    v = np.broadcast_to(v[:, None], u.shape)
    # Texture pixels per image pixel in each row, and the mip level that matches it.
    minification = np.maximum(slant / inverse**2, 1.0 / inverse)
    level = np.clip(np.log2(minification), 0.0, 2.0)[:, None, None]
    warped = np.zeros((height, width, 3), np.float32)
    reduced = flat
    for k in range(3):
        if k:
            reduced = cv2.pyrDown(reduced)
        scale = 2.0**-k
        sampled = cv2.remap(
            reduced,
            ((u + 0.5) * scale - 0.5).astype(np.float32),
            ((v + 0.5) * scale - 0.5).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        warped += np.clip(1.0 - np.abs(level - k), 0.0, 1.0) * sampled
    return np.ascontiguousarray(warped, dtype=np.float32), f"ground/{name}"


def _horizon_line(rng: np.random.Generator, width: int, row: float, height: int) -> np.ndarray:
    """The horizon's row at each column: a tilt plus gentle hills (float32, W)."""
    x = np.arange(width, dtype=np.float32)
    tilt = rng.uniform(-0.08, 0.08) * (x - width / 2.0)
    hills = np.zeros(width, np.float32)
    for _ in range(2):
        period = width * rng.uniform(0.4, 1.5)
        hills += (
            height * rng.uniform(0.0, 0.03) * np.sin(2 * math.pi * x / period + rng.uniform(0, 6.3))
        )
    return row + tilt + hills


# -- scenes -----------------------------------------------------------------------------


def photo_layers(
    rng: np.random.Generator,
    shape: tuple[int, int],
    camera: ThinLensCamera,
    max_coc_px: float,
    depth_range_m: tuple[float, float] = (0.5, 100.0),
    bank: TextureBank | None = None,
    photo_prob: float = PHOTO_PROB,
) -> list[Layer]:
    """A photograph-like scene for ``camera``, ordered far to near (module docstring).

    Args:
        rng: the only source of randomness.
        shape: (H, W) of every layer (the canvas, margins included).
        camera: the scene's thin-lens camera (focus distance, aperture).
        max_coc_px: no surface gets a larger blur radius.
        depth_range_m: every depth lies in this range.
        bank: photographs for textures (None: procedural only).
        photo_prob: chance that a texture is a photograph (when any loaded).
    """
    height, width = shape
    near, far = coc_limits(camera, max_coc_px, depth_range_m)
    far = max(far, 1.0)
    layers: list[Layer] = []
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)

    # Background: far behind focus, fronto-parallel or receding to one side.
    background = rng.uniform(0.45, 1.0) * far
    texture, name = random_texture(rng, shape, bank, photo_prob)
    if rng.random() < 0.3:
        slope = rng.uniform(-0.5, 0.5) * far / width
        coc = np.clip(background + slope * (x - width / 2.0), 0.3 * far, far)
    else:
        coc = np.full(shape, background, np.float32)
    depth = _depth(camera, coc.astype(np.float64)).astype(np.float32)
    layers.append(
        Layer(texture, np.ones(shape, np.float32), float(depth.max()), f"background/{name}", depth)
    )
    nearest_background = float(coc.min())

    subjects = [
        0.0 if rng.random() < 0.5 else rng.uniform(-SUBJECT_MAX_COC_PX, SUBJECT_MAX_COC_PX)
        for _ in range(1 if rng.random() < 0.65 else 2)
    ]
    ground = None
    if rng.random() < GROUND_PROB:
        horizon_row = rng.uniform(0.2, 0.6) * height
        top = rng.uniform(0.5, 1.0) * nearest_background  # radius at the horizon
        top = max(top, min(far, max(subjects) + 0.5))
        bottom = max(near, rng.uniform(-0.7, 0.1) * max_coc_px)
        bottom = min(bottom, top - 0.5)
        rows = np.arange(height, dtype=np.float32)
        ground_coc = top + (bottom - top) * (rows - horizon_row) / (height - horizon_row)
        ground_coc = np.clip(ground_coc, bottom, top)
        texture, name = _ground_texture(rng, shape, horizon_row, bank, photo_prob)
        line = _horizon_line(rng, width, horizon_row, height)
        alpha = np.clip(y - line[None, :] + 0.5, 0.0, 1.0).astype(np.float32)
        depth = np.repeat(
            _depth(camera, ground_coc.astype(np.float64)).astype(np.float32)[:, None], width, 1
        )
        layers.append(Layer(texture, alpha, float(depth.max()), name, depth))
        ground = (horizon_row, top, bottom)

    def ground_row(radius: float) -> float:
        """The row where the ground has this radius (where an object of that depth stands)."""
        horizon_row, top, bottom = ground
        return horizon_row + (top - radius) / (top - bottom) * (height - horizon_row)

    # Subjects near the focal plane, standing on the ground where it has their depth.
    subject_height = 0.5 * height
    subject_row = height
    for radius in subjects:
        subject_height = rng.uniform(0.35, 0.85) * height
        subject_width = subject_height * rng.uniform(0.35, 0.75)
        if ground is not None:
            subject_row = min(ground_row(radius), 1.25 * height) + rng.uniform(-0.02, 0.02) * height
        else:
            subject_row = rng.uniform(0.7, 1.2) * height
        alpha, kind = subject_mask(
            rng, shape, rng.uniform(0.15, 0.85) * width, subject_row, subject_height, subject_width
        )
        texture, name = random_texture(rng, shape, bank, photo_prob)
        layers.append(
            Layer(texture, alpha, float(_depth(camera, radius)), f"subject/{kind}/{name}")
        )

    # Other objects at other depths: on the ground (scaled with distance) or floating.
    for _ in range(int(rng.integers(0, 4))):
        if ground is not None:
            horizon_row, top, bottom = ground
            row = rng.uniform(horizon_row + 0.05 * height, 1.1 * height)
            radius = float(
                np.clip(
                    top + (bottom - top) * (row - horizon_row) / (height - horizon_row), near, far
                )
            )
            scale = subject_height / max(subject_row - horizon_row, 1.0)
            size = float(
                np.clip(
                    rng.uniform(0.4, 1.5) * scale * (row - horizon_row), 0.06 * height, 0.9 * height
                )
            )
        else:
            radius = rng.uniform(near, nearest_background)
            row = rng.uniform(0.3, 1.1) * height
            size = rng.uniform(0.15, 0.6) * height
        alpha, kind = subject_mask(
            rng, shape, rng.uniform(0.0, 1.0) * width, row, size, size * rng.uniform(0.3, 1.0)
        )
        texture, name = random_texture(rng, shape, bank, photo_prob)
        layers.append(Layer(texture, alpha, float(_depth(camera, radius)), f"object/{kind}/{name}"))

    # Occluders in front of the focal plane, entering from the edges.
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        radius = rng.uniform(0.4, 1.0) * near
        alpha, kind = occluder_mask(rng, shape)
        texture, name = random_texture(rng, shape, bank, photo_prob)
        layers.append(
            Layer(texture, alpha, float(_depth(camera, radius)), f"occluder/{kind}/{name}")
        )

    order = sorted(range(len(layers)), key=lambda i: -layers[i].depth)  # stable: ties keep order
    return [layers[i] for i in order]
