"""DPANet's released ``final.pth``: detecting it and renaming its tensors onto ours.

``final.pth`` is a ``torch.save`` of a dict whose ``G_state_dict`` holds the 212 weight
tensors of the release's ``VGG_Deblur``, saved from inside ``nn.DataParallel`` (every key
starts with ``module.``). The release's module names differ from ours; :func:`dpanet_key_map`
renames them rule by rule, and :func:`convert` refuses a checkpoint that does not map
completely onto ``create_model("dpanet")``, naming the missing and unexpected keys
(:func:`dpdeblur.runs.state_dict.check_fits`). Release keys that no rule covers are
reported as unexpected under the name the release gives them.

Colour order. The authors read every image with OpenCV's default flags and never convert
to RGB: the released network takes B,G,R views and returns B,G,R. Only two layers see
colour channels, the first convolution of the pre-deblur stage (its input channels; it
runs on each view alone) and the last convolution of the head (its output channels,
weight and bias). :func:`convert` reverses those channel axes (:func:`bake_rgb_order`), so
the converted model takes and returns R,G,B and computes exactly what the release computes
on the same pixels in B,G,R. The release also saw 8-bit values, ``floor(v16 / 256) / 255``
(OpenCV's default read of a 16-bit PNG): ``input_bits=8`` reproduces that
(:mod:`dpdeblur.models.release_protocol`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from dpdeblur.errors import CheckpointError
from dpdeblur.runs.state_dict import check_fits

# The release format's name (the registry's ``weights_format`` of ``dpanet``) and the
# registry model its weights load into.
NAME = "dpanet-final-pth"
MODEL = "dpanet"

# A conv block (``CONV_BLOCK`` in the release): first conv, then two residual blocks.
_CONV_BLOCK = [(r"conv_block\.0\.", "conv."), (r"RB_(\d)\.", lambda m: f"res.{int(m[1]) - 1}.")]

# Release key (without "module.") -> our key; first matching prefix rule wins.
_DPANET_RULES: list[tuple[str, object]] = [
    (r"^predeblur\.conv_first\.", "predeblur.conv_first."),
    (r"^predeblur\.RB_L(\d)_(\d)\.", lambda m: f"predeblur.rb_l{m[1]}.{int(m[2]) - 1}."),
    (r"^predeblur\.deblur_L(\d)_conv\.", lambda m: f"predeblur.down_l{m[1]}."),
    (r"^encoder\.encoder(\d)\.block\.block\.", lambda m: f"encoder.{int(m[1]) - 1}.block."),
    (
        r"^encoder\.encoder(\d)\.offset_([lr])\.offset_conv\.",
        lambda m: f"encoder.{int(m[1]) - 1}.offset_{m[2]}.body.0.",
    ),
    (r"^encoder\.encoder(\d)\.flow_conv\.", lambda m: f"encoder.{int(m[1]) - 1}.cv_embed."),
    (r"^encoder\.encoder(\d)\.deform\.", lambda m: f"encoder.{int(m[1]) - 1}.align."),
    (r"^encoder_5\.block\.", "bottleneck."),
    (r"^up(\d)\.upsample\.up\.1\.", lambda m: f"decoder.{int(m[1]) - 1}.upsample.conv."),
    (r"^up(\d)\.offset_([lr])\.", lambda m: f"decoder.{int(m[1]) - 1}.offset_{m[2]}.body.0."),
    (r"^up(\d)\.deform_([lr])\.", lambda m: f"decoder.{int(m[1]) - 1}.align_{m[2]}."),
    (r"^up(\d)\.cv\.", lambda m: f"decoder.{int(m[1]) - 1}.fuse."),
    (r"^out\.", "head."),
]
# Our keys of the two layers that see colour channels, and the axis that holds them: the
# pre-deblur's first convolution (input channels, per view) and the head's last
# convolution (output channels).
COLOUR_AXES: dict[str, int] = {
    "predeblur.conv_first.weight": 1,
    "head.2.weight": 0,
    "head.2.bias": 0,
}

# Keys whose prefix is a conv block get the conv-block rules applied to the rest.
_BLOCK_PREFIX = re.compile(r"^(encoder\.\d+\.block\.|bottleneck\.|decoder\.\d+\.fuse\.)(.*)$")


def _rename_dpanet_key(key: str) -> str | None:
    for pattern, replacement in _DPANET_RULES:
        new, count = re.subn(pattern, replacement, key, count=1)
        if count:
            block = _BLOCK_PREFIX.match(new)
            if block:
                rest = block[2]
                for sub_pattern, sub_replacement in _CONV_BLOCK:
                    rest, n = re.subn("^" + sub_pattern, sub_replacement, rest, count=1)
                    if n:
                        break
                else:
                    return None
                new = block[1] + rest
            return new
    return None


def dpanet_key_map(release_keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map release keys (``module.`` already stripped) to ours.

    Returns ``(mapping, unmapped)``: ``mapping[release_key] = our_key`` and the release keys
    no rule covers.
    """
    mapping, unmapped = {}, []
    for key in release_keys:
        new = _rename_dpanet_key(key)
        if new is None:
            unmapped.append(key)
        else:
            mapping[key] = new
    return mapping, unmapped


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Drop ``prefix`` (``nn.DataParallel``'s ``module.``) from every key that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def detect(payload: object) -> bool:
    """Whether a checkpoint read from disk is laid out as the release's ``final.pth``."""
    return isinstance(payload, Mapping) and isinstance(payload.get("G_state_dict"), Mapping)


def release_state_dict(payload: object, path: str | Path | None = None) -> dict[str, Tensor]:
    """The release's weights from a read ``final.pth``, keys without ``module.``.

    Accepts the release's ``{"G_state_dict": ...}`` and, as a convenience, a bare state dict.
    Raises :class:`CheckpointError` for anything else.
    """
    if isinstance(payload, Mapping) and "G_state_dict" in payload:
        payload = payload["G_state_dict"]
    if not isinstance(payload, Mapping) or not payload:
        raise CheckpointError(
            "no state dict found (expected a dict with 'G_state_dict')",
            path,
            "is this DPANet's released final.pth?",
        )
    bad = [k for k, v in payload.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"the state dict holds {len(bad)} entries that are not named tensors", path
        )
    return strip_prefix(payload)


def bake_rgb_order(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The release's weights (our key names) turned from B,G,R to R,G,B: the colour axes
    of :data:`COLOUR_AXES` reversed, every other tensor unchanged. Its own inverse."""
    baked = dict(state_dict)
    for key, axis in COLOUR_AXES.items():
        if key in baked and baked[key].dim() > axis and baked[key].shape[axis] == 3:
            baked[key] = baked[key].flip(axis)
    return baked


def convert(payload: object, model: nn.Module, path: str | Path | None = None) -> dict[str, Tensor]:
    """The release's tensors under ``model``'s keys, checked to cover the model exactly,
    with the colour order baked in (the converted model takes and returns R,G,B).

    ``payload`` is the read ``final.pth`` (or its state dict, with or without ``module.``).
    Raises :class:`CheckpointError` naming the missing, unexpected and wrong-shape keys.
    """
    release = release_state_dict(payload, path)
    mapping, _ = dpanet_key_map(list(release))
    # A key no rule covers stays under its release name, marked so it is never one of ours.
    converted = {mapping.get(k, f"{k} (unmapped)"): v for k, v in release.items()}
    check_fits(
        model,
        converted,
        path,
        "checkpoint does not map completely onto DPANet",
        "is this DPANet's released final.pth, and not another model's?",
    )
    return bake_rgb_order(converted)
