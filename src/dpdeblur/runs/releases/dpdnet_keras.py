"""DPDNet's released Keras model: reading its HDF5 file with h5py and renaming its 24
convolutions onto ``create_model("dpdnet")``.

The release (Abuolaim and Brown, "Defocus Deblurring Using Dual-Pixel Data", ECCV 2020):

- file: ``defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5``, published by the authors with
  their code (github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel, ``DPDNet/``):
  the README's "Testing" section links the download and has it put in
  ``DPDNet/ModelCheckpoints/``.
- format: a whole-model Keras HDF5 file, written by Keras 2.2.4 (TensorFlow 1.9 backend)
  through ``ModelCheckpoint`` (``model.save``): the model config, the weights under
  ``model_weights/<layer>/<layer>/kernel:0`` and ``.../bias:0``, the training config and
  the Adam state. Keras weights-only files (``save_weights``: the same layer groups at the
  file's root) are read too. No TensorFlow or Keras is needed: h5py reads the weights and
  ignores the rest.
- network: the U-Net of :mod:`dpdeblur.models.dpdnet` at width 1.0, layer for layer:
  24 Conv2D layers, 48 float32 tensors, 31,035,151 parameters; kernels are stored
  (H, W, in, out) and become PyTorch's (out, in, H, W) (no flip: both are
  cross-correlations).
- colour order: the authors read the images with OpenCV and never convert them, so the
  release takes [L_B, L_G, L_R, R_B, R_G, R_R] (left view then right view, each B, G, R)
  and returns B, G, R. The conversion reorders the first conv's input channels and reverses
  the last conv's outputs, so the converted model takes and returns R, G, B like every
  model here; this is exact (both layers are linear in the permuted channels).
- values: trained and tested on the DPDD Canon set's 16-bit sRGB PNGs divided by 65535;
  the output is a sigmoid in [0, 1].
- the authors' test protocol resizes every image (bilinear) to 1680 x 1120, rotating
  portraits first; for DPDD's Canon test images (already 1680 x 1120) that is the identity.

The file's layers are taken in the order Keras saved them (``layer_names``), those that
carry weights are kept, and each must be a conv of the release's table
(:data:`RELEASE_CONVS`) with its kernel and bias shapes. Layer names are not relied on
(tf.keras would number them differently). A file with a missing, an extra or a mis-shaped
layer is refused with one :class:`~dpdeblur.errors.CheckpointError` naming it.

:func:`dpdeblur.runs.checkpoints.read_checkpoint` reads an HDF5 file (recognised by its
signature) with :func:`read_keras_hdf5`, whose payload :func:`detect` recognises.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dpdeblur.errors import CheckpointError
from dpdeblur.runs.state_dict import check_fits

try:
    import h5py
except ImportError:  # a dependency; a broken install is reported when an .hdf5 is read
    h5py = None

NAME = "dpdnet-keras-hdf5"
MODEL = "dpdnet"
RELEASE_FILE = "defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5"

# The first bytes of every HDF5 file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# ``payload["format"]`` of a Keras HDF5 file read by :func:`read_keras_hdf5`.
KERAS_HDF5 = "keras-hdf5"

# The release's Conv2D layers in the order Keras saves them: (Keras 2.2.x default name,
# kernel shape (H, W, in, out), our module). Each bias has shape (out,).
RELEASE_CONVS: tuple[tuple[str, tuple[int, int, int, int], str], ...] = (
    ("conv2d_1", (3, 3, 6, 64), "encoder.0.0"),
    ("conv2d_2", (3, 3, 64, 64), "encoder.0.2"),
    ("conv2d_3", (3, 3, 64, 128), "encoder.1.0"),
    ("conv2d_4", (3, 3, 128, 128), "encoder.1.2"),
    ("conv2d_5", (3, 3, 128, 256), "encoder.2.0"),
    ("conv2d_6", (3, 3, 256, 256), "encoder.2.2"),
    ("conv2d_7", (3, 3, 256, 512), "encoder.3.0"),
    ("conv2d_8", (3, 3, 512, 512), "encoder.3.2"),
    ("conv2d_9", (3, 3, 512, 1024), "bottleneck.0"),
    ("conv2d_10", (3, 3, 1024, 1024), "bottleneck.2"),
    ("conv2d_11", (2, 2, 1024, 512), "up.0.0.conv"),
    ("conv2d_12", (3, 3, 1024, 512), "decoder.0.0"),
    ("conv2d_13", (3, 3, 512, 512), "decoder.0.2"),
    ("conv2d_14", (2, 2, 512, 256), "up.1.0.conv"),
    ("conv2d_15", (3, 3, 512, 256), "decoder.1.0"),
    ("conv2d_16", (3, 3, 256, 256), "decoder.1.2"),
    ("conv2d_17", (2, 2, 256, 128), "up.2.0.conv"),
    ("conv2d_18", (3, 3, 256, 128), "decoder.2.0"),
    ("conv2d_19", (3, 3, 128, 128), "decoder.2.2"),
    ("conv2d_20", (2, 2, 128, 64), "up.3.0.conv"),
    ("conv2d_21", (3, 3, 128, 64), "decoder.3.0"),
    ("conv2d_22", (3, 3, 64, 64), "decoder.3.2"),
    ("conv2d_23", (3, 3, 64, 3), "head.0"),
    ("conv2d_24", (1, 1, 3, 3), "head.2"),
)

# Colour permutation: our first conv's input channel i is the release's RGB_INPUT[i]
# (RGB views in, the release's BGR views), our last conv's output j its RGB_OUTPUT[j].
RGB_INPUT = [2, 1, 0, 5, 4, 3]
RGB_OUTPUT = [2, 1, 0]

_FIX = f"is this DPDNet's released {RELEASE_FILE} (24 Conv2D layers), not another Keras model?"

# One weighted layer as found: (kernel shape, bias shape), or the names of other weights.
_Signature = tuple[tuple[int, ...], tuple[int, ...]] | tuple[str, ...]


def is_hdf5(path: str | Path) -> bool:
    """Whether ``path`` starts with the HDF5 signature (Keras ``.hdf5`` / ``.h5`` files)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _string_list(attrs: Any, name: str) -> list[str] | None:
    """A list attribute Keras wrote (array of bytes; an empty list is an empty float array;
    a long one is split into ``name0``, ``name1``, ...), or ``None`` if there is none."""
    if name in attrs:
        chunks = [attrs[name]]
    elif f"{name}0" in attrs:
        chunks = []
        while f"{name}{len(chunks)}" in attrs:
            chunks.append(attrs[f"{name}{len(chunks)}"])
    else:
        return None
    values = [v for chunk in chunks for v in np.atleast_1d(chunk).tolist()]
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _attribute(attrs: Any, name: str) -> str | None:
    value = attrs.get(name)
    return value.decode("utf8") if isinstance(value, bytes) else value


def read_keras_hdf5(path: str | Path) -> dict[str, Any]:
    """The weights of a Keras (2.x) HDF5 file, whole-model or weights-only.

    Returns ``{"format": "keras-hdf5", "layout": "model" | "weights", "keras_version",
    "backend", "layers": {layer name: {weight name: array}}}``, layers in the file's
    ``layer_names`` order (weightless ones with an empty dict), weights in each layer's
    ``weight_names`` order. The model config, training config and optimizer state are not
    read. Raises :class:`CheckpointError` for a file h5py cannot read or that is not laid
    out as Keras saves one.
    """
    if h5py is None:
        raise CheckpointError(
            "reading a Keras .hdf5 file needs h5py, which is not installed",
            path,
            "pip install h5py",
        )
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise CheckpointError(
            f"not a readable HDF5 file ({type(err).__name__})",
            path,
            "the file is corrupt or truncated: download it again",
        ) from None
    with handle:
        whole_model = "model_weights" in handle
        group = handle["model_weights"] if whole_model else handle
        layer_names = _string_list(group.attrs, "layer_names")
        if layer_names is None:
            raise CheckpointError(
                "an HDF5 file without Keras's 'layer_names' attribute",
                path,
                "pass a Keras model.save or save_weights file",
            )
        layers: dict[str, dict[str, np.ndarray]] = {}
        for layer in layer_names:
            if layer not in group:
                raise CheckpointError(
                    f"layer '{layer}' is listed in layer_names but has no group", path, _FIX
                )
            weights = {}
            for weight in _string_list(group[layer].attrs, "weight_names") or []:
                if weight not in group[layer]:
                    raise CheckpointError(
                        f"weight '{layer}/{weight}' is listed in weight_names but not stored",
                        path,
                        "the file is incomplete: download it again",
                    )
                weights[weight] = np.asarray(group[layer][weight])
            layers[layer] = weights
        return {
            "format": KERAS_HDF5,
            "layout": "model" if whole_model else "weights",
            "keras_version": _attribute(group.attrs, "keras_version"),
            "backend": _attribute(group.attrs, "backend"),
            "layers": layers,
        }


def detect(payload: object) -> bool:
    """Whether a checkpoint read from disk is a Keras HDF5 file (:func:`read_keras_hdf5`).

    Any Keras file is taken as this release, so that one of another network is refused by
    :func:`convert` with the layer that does not map, instead of as an unknown layout.
    """
    return isinstance(payload, Mapping) and payload.get("format") == KERAS_HDF5


def _split(weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """A layer's (kernel, bias), if those are its only weights (``.../kernel:0``)."""
    by_kind = {name.rsplit("/", 1)[-1]: value for name, value in weights.items()}
    if len(weights) != 2 or set(by_kind) != {"kernel:0", "bias:0"}:
        return None
    return by_kind["kernel:0"], by_kind["bias:0"]


def _signature(weights: Mapping[str, np.ndarray]) -> _Signature:
    split = _split(weights)
    if split is None:
        return tuple(weights)
    return tuple(split[0].shape), tuple(split[1].shape)


def _expected(index: int) -> _Signature:
    kernel = RELEASE_CONVS[index][1]
    return kernel, (kernel[3],)


def _describe_expected(index: int) -> str:
    keras_name, kernel, ours = RELEASE_CONVS[index]
    return f"{keras_name}, kernel {kernel} -> our {ours}"


def _describe_found(name: str, weights: Mapping[str, np.ndarray]) -> str:
    shapes = ", ".join(f"{w} {tuple(v.shape)}" for w, v in weights.items())
    return f"'{name}' ({shapes})"


def _mismatch(name: str, weights: Mapping[str, np.ndarray], index: int) -> str:
    """Why layer ``name`` is not release conv ``index``: the first weight that differs."""
    split = _split(weights)
    if split is None:
        return (
            f"layer '{name}' holds {', '.join(weights)}, not a kernel:0 and a bias:0 "
            f"(expected {_describe_expected(index)})"
        )
    for weight, value in weights.items():  # the kernel and the bias, in the file's order
        want = _expected(index)[0 if weight.rsplit("/", 1)[-1] == "kernel:0" else 1]
        if tuple(value.shape) != want:
            return (
                f"layer '{name}' weight '{weight}' has shape {tuple(value.shape)}, expected "
                f"{want} ({_describe_expected(index)})"
            )
    return f"layer '{name}' does not match {_describe_expected(index)}"


def match_layers(
    payload: Mapping[str, Any], path: str | Path | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The file's weighted layers as ``(name, kernel, bias)``, one per row of
    :data:`RELEASE_CONVS`, in order; raises :class:`CheckpointError` naming the missing,
    extra or mis-shaped layer when they do not map one to one."""
    found = [(name, weights) for name, weights in payload["layers"].items() if weights]
    got = [_signature(weights) for _, weights in found]
    want = [_expected(i) for i in range(len(RELEASE_CONVS))]
    problem = "the file's layers do not map onto DPDNet: "
    if got != want:
        n, m = len(got), len(want)
        count = f"layers with weights: {n}, the release's convs: {m}"
        same = next((i for i in range(min(n, m)) if got[i] != want[i]), min(n, m))
        if n == m - 1 and got[same:] == want[same + 1 :]:
            detail = f"no layer for {_describe_expected(same)} ({count})"
        elif n == m + 1 and got[same + 1 :] == want[same:]:
            detail = f"unexpected layer {_describe_found(*found[same])} ({count})"
        elif n == m:
            detail = _mismatch(*found[same], same)
        elif same < min(n, m):
            detail = f"{_mismatch(*found[same], same)} ({count})"
        elif n < m:
            detail = f"no layer for {_describe_expected(same)} and the rest ({count})"
        else:
            detail = f"unexpected layer {_describe_found(*found[same])} and the rest ({count})"
        raise CheckpointError(problem + detail, path, _FIX)
    return [(name, *_split(weights)) for name, weights in found]


def convert(payload: object, model: nn.Module, path: str | Path | None = None) -> dict[str, Tensor]:
    """The release's tensors under ``model``'s keys, colours permuted to R, G, B, checked to
    cover the model exactly.

    ``payload`` is what :func:`read_keras_hdf5` read. Kernels (H, W, in, out) become
    (out, in, H, W), float32; the first conv's input channels take the release's
    :data:`RGB_INPUT` order and the last conv's outputs its :data:`RGB_OUTPUT` order.
    Raises :class:`CheckpointError` naming the layer or weight that does not map.
    """
    if not detect(payload):
        raise CheckpointError("not a Keras HDF5 file's weights", path, _FIX)
    state: dict[str, Tensor] = {}
    for (_, kernel, bias), (_, _, ours) in zip(
        match_layers(payload, path), RELEASE_CONVS, strict=True
    ):
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        state[f"{ours}.weight"] = torch.from_numpy(weight)
        state[f"{ours}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float32))
    first, last = RELEASE_CONVS[0][2], RELEASE_CONVS[-1][2]
    state[f"{first}.weight"] = state[f"{first}.weight"][:, RGB_INPUT]
    state[f"{last}.weight"] = state[f"{last}.weight"][RGB_OUTPUT]
    state[f"{last}.bias"] = state[f"{last}.bias"][RGB_OUTPUT]
    check_fits(
        model,
        state,
        path,
        "the release's weights do not fit this model",
        "convert into create_model('dpdnet') (width 1.0, the paper's head, no cost_shifts)",
    )
    return state
