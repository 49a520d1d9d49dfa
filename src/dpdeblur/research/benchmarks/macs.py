"""Parameter and multiply-accumulate (MAC) accounting of a model at a given input size.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
1 x 3 x H x W pair, with formulas registered for the two operators it does not know:

- ``torchvision::deform_conv2d``: the convolution of the sampled values, as for a plain
  conv of the same shape (``out elements x Cin/groups x kh x kw``); the bilinear sampling
  and modulation are not counted (a few operations per sampled value, as FLOP counters
  usually leave them out).
- ``dpdeblur::correlation``: ``B x (2d+1)^2 x C x H x W`` (one product-sum per channel,
  displacement and pixel).

Each count is reported op by op, the convolutions split by the module that ran them. Two
totals:

- ``complete``: everything counted.
- ``thop``: what the ``thop`` package reports, which walks the leaf modules and counts
  only those whose type is exactly one it knows (``nn.Conv2d``, ``nn.Linear``, ...). It
  skips subclasses such as the release's same-padding conv, the deformable convs and the
  correlation. This is how the DPANet paper's 213.77G at 256x256 arises
  (docs/dpanet.md); this count gives 213.71G (thop's elementwise extras, such as bias or
  activation ops in some versions, are left out).

``torch.utils.flop_counter`` reports FLOPs as 2 x MACs; this module divides by 2.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Importing it registers the operator ``dpdeblur::correlation``.
import dpdeblur.nn.correlation  # noqa: F401
from dpdeblur.nn.blocks import SamePadConv2d
from dpdeblur.research.benchmarks.selection import build_model

# Module types thop counts (exact type match); only their conv/linear MACs matter here.
THOP_MODULE_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)

CATEGORY_CONV = "conv"
CATEGORY_SAME_PAD_CONV = "same-pad conv"
CATEGORY_DEFORM = "deformable conv"
CATEGORY_CORRELATION = "correlation"


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _deform_conv2d_flops(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 x MACs) of ``torchvision::deform_conv2d``: the conv part only."""
    _, cin_per_group, kh, kw = weight_shape
    return 2 * _prod(out_shape) * int(cin_per_group) * int(kh) * int(kw)


def _correlation_flops(x1_shape, x2_shape, max_displacement, out_shape=None, **kwargs) -> int:
    """FLOPs (2 x MACs) of ``dpdeblur::correlation``: B x (2d+1)^2 x C x H x W MACs."""
    return 2 * _prod(out_shape) * int(x1_shape[1])


def custom_flop_formulas() -> dict:
    """Formulas for ``FlopCounterMode(custom_mapping=...)``: the ops it does not know."""
    return {
        torch.ops.torchvision.deform_conv2d: _deform_conv2d_flops,
        torch.ops.dpdeblur.correlation: _correlation_flops,
    }


@dataclass
class CostReport:
    """Parameters and MACs of one model at one input size."""

    model: str
    size: tuple[int, int]
    params: int
    macs: dict[str, int] = field(default_factory=dict)  # category -> MACs
    thop_macs: int = 0

    @property
    def complete_macs(self) -> int:
        return sum(self.macs.values())

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "size": list(self.size),
            "params": self.params,
            "macs": dict(self.macs),
            "complete_macs": self.complete_macs,
            "thop_macs": self.thop_macs,
        }


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def _op_name(op) -> str:
    return str(op).split(".")[-1] if "." in str(op) else str(op)


def count_macs(
    model: nn.Module, size: tuple[int, int], name: str | None = None, batch: int = 1
) -> CostReport:
    """Count parameters and MACs of ``model(left, right)`` on ``batch x 3 x H x W`` inputs.

    Convolutions are attributed to the leaf module that ran them: a ``SamePadConv2d`` is
    "same-pad conv", anything else "conv"; other counted operators keep their own name.
    """
    height, width = size
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    left = torch.rand(batch, 3, height, width, device=device)
    right = torch.rand(batch, 3, height, width, device=device)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=custom_flop_formulas())
    try:
        with torch.no_grad(), counter:
            model(left, right)
    finally:
        model.train(was_training)

    counts = counter.get_flop_counts()
    root = type(model).__name__
    modules = dict(model.named_modules())
    macs: dict[str, int] = defaultdict(int)
    thop = 0
    attributed: dict[str, int] = defaultdict(int)  # op name -> FLOPs seen in leaf modules
    for key, per_op in counts.items():
        if key == "Global" or not key.startswith(root + "."):
            continue
        module = modules.get(key[len(root) + 1 :])
        if module is None or any(True for _ in module.children()):
            continue
        for op, flops in per_op.items():
            op_name = _op_name(op)
            attributed[op_name] += flops
            if op_name == "convolution":
                category = (
                    CATEGORY_SAME_PAD_CONV if isinstance(module, SamePadConv2d) else CATEGORY_CONV
                )
            else:
                category = _category(op_name)
            macs[category] += flops // 2
            if type(module) in THOP_MODULE_TYPES:
                thop += flops // 2
    # Operators outside any leaf module (functional calls in a forward).
    for op, flops in counts.get("Global", {}).items():
        op_name = _op_name(op)
        rest = flops - attributed.get(op_name, 0)
        if rest > 0:
            category = _category(op_name)
            if op_name == "convolution":
                category = "conv (functional)"
            macs[category] += rest // 2
    return CostReport(
        model=name or getattr(model, "registry_name", root),
        size=(height, width),
        params=count_params(model),
        macs=dict(macs),
        thop_macs=thop,
    )


def _category(op_name: str) -> str:
    return {
        "deform_conv2d": CATEGORY_DEFORM,
        "correlation": CATEGORY_CORRELATION,
    }.get(op_name, op_name)


def format_table(reports: list[CostReport], unit: float = 1e9) -> str:
    """A Markdown table: one row per model, parameters (M) and GMACs op by op and in total."""
    categories: list[str] = []
    for preferred in (CATEGORY_CONV, CATEGORY_SAME_PAD_CONV, CATEGORY_DEFORM, CATEGORY_CORRELATION):
        if any(preferred in r.macs for r in reports):
            categories.append(preferred)
    for r in reports:
        for c in r.macs:
            if c not in categories:
                categories.append(c)
    size = "x".join(str(s) for s in reports[0].size) if reports else ""
    header = ["model", "params", *[f"{c} GMACs" for c in categories]]
    header += ["complete GMACs", "thop-like GMACs"]
    lines = [
        f"Parameters and MACs at {size} (one 1x3xHxW pair; G = 1e9)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for r in reports:
        cells = [r.model, f"{r.params:,}"]
        cells += [f"{r.macs.get(c, 0) / unit:.2f}" for c in categories]
        cells += [f"{r.complete_macs / unit:.2f}", f"{r.thop_macs / unit:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def count_registry_macs(
    names: list[str], size: tuple[int, int], width: float | None = None
) -> list[CostReport]:
    """Parameters and MACs of each registry model in ``names`` at ``size`` (``width``
    overrides every model's width), one model in memory at a time."""
    reports = []
    for name in names:
        model = build_model(name, width)
        reports.append(count_macs(model, size, name=name))
        del model
    return reports


def macs_payload(reports: list[CostReport], size: tuple[int, int], width: float | None) -> dict:
    """The JSON form of ``dpdeblur-bench cost``'s table."""
    return {
        "size": list(size),
        "width": width,
        "unit": "MACs (multiply-accumulates); FLOPs = 2 x MACs",
        "models": [r.to_dict() for r in reports],
    }
