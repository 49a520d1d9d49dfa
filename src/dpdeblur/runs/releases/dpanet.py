"""Loading the authors' released checkpoints into this package's models.

DPANet (spec: dpanet.md, "The released checkpoint"): ``final.pth`` is a ``torch.save`` of a
dict whose ``G_state_dict`` holds the 212 weight tensors of the release's ``VGG_Deblur``,
saved from inside ``nn.DataParallel`` (every key starts with ``module.``). The release's
module names differ from ours; :func:`dpanet_key_map` renames them rule by rule, and a
checkpoint that does not map completely onto ``create_model("dpanet")`` is refused with
the missing and unexpected keys named.

The converted file (``OUT.pt``) is a plain dict, loadable with ``weights_only=True``::

    {"format": "dpdeblur-weights", "version": 1, "model": "dpanet", "model_kwargs": {},
     "state_dict": {...}, "source": "final.pth"}

and :func:`load_converted` rebuilds the model from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from dpdeblur.errors import CheckpointError

WEIGHTS_FORMAT = "dpdeblur-weights"
WEIGHTS_VERSION = 1

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


def read_release_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The release's weights from ``final.pth``, keys without ``module.``.

    Accepts the release's ``{"G_state_dict": ...}`` and, as a convenience, a bare state dict.
    Raises :class:`CheckpointError` for a missing, unreadable or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            "checkpoint not found", path, "give the path to the released final.pth"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle: a bad file
        raise CheckpointError(
            f"cannot read checkpoint ({type(err).__name__}: {err})",
            path,
            "the file is corrupt or not a PyTorch checkpoint; download final.pth again",
        ) from err
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


def _summary(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def convert_dpanet_state_dict(
    release: Mapping[str, Tensor], model: nn.Module, path: str | Path | None = None
) -> dict[str, Tensor]:
    """Rename a release state dict to ``model``'s keys and check it covers the model exactly.

    Raises :class:`CheckpointError` naming the keys that do not map (unexpected) and the
    model's keys left without a tensor (missing), and any tensor whose shape differs.
    """
    mapping, unmapped = dpanet_key_map(list(release))
    target = model.state_dict()
    converted = {mapping[k]: release[k] for k in mapping}
    unexpected = unmapped + [k for k, new in mapping.items() if new not in target]
    missing = [k for k in target if k not in converted]
    if unexpected or missing:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_summary(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_summary(unexpected)})")
        raise CheckpointError(
            "checkpoint does not map completely onto DPANet: " + "; ".join(problems),
            path,
            "is this DPANet's released final.pth, and not another model's?",
        )
    wrong = [
        f"{k} {tuple(converted[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if converted[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{len(wrong)} tensors have the wrong shape ({_summary(wrong, 3)})",
            path,
            "the checkpoint is of another model or width",
        )
    return converted


def convert_dpanet(src: str | Path, out: str | Path) -> Path:
    """Convert the released ``final.pth`` to a ``dpdeblur`` weights file at ``out``.

    The converted weights are loaded into ``create_model("dpanet")`` (strict) before saving,
    so a file is only written for a complete conversion.
    """
    from dpdeblur.models import create_model

    release = read_release_checkpoint(src)
    model = create_model("dpanet")
    converted = convert_dpanet_state_dict(release, model, src)
    model.load_state_dict(converted, strict=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": WEIGHTS_FORMAT,
            "version": WEIGHTS_VERSION,
            "model": "dpanet",
            "model_kwargs": {},
            "state_dict": model.state_dict(),
            "source": Path(src).name,
        },
        out,
    )
    return out


def load_converted(path: str | Path) -> nn.Module:
    """Rebuild the model saved by :func:`convert_dpanet` (or any ``dpdeblur-weights`` file)."""
    from dpdeblur.models import create_model

    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError("weights file not found", path) from err
    except Exception as err:  # any failure to unpickle
        raise CheckpointError(f"cannot read weights ({type(err).__name__})", path) from err
    if not isinstance(payload, Mapping) or payload.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(
            "not a dpdeblur weights file", path, "convert it first with dpdeblur-convert"
        )
    model = create_model(payload["model"], **payload.get("model_kwargs", {}))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not fit {payload['model']}: {err}", path) from err
    return model


CONVERTERS = {"dpanet": convert_dpanet}
