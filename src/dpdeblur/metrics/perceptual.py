"""LPIPS (Zhang et al., CVPR 2018) as the protocol scores it: the ``lpips`` package's AlexNet
v0.1 with ``normalize=True`` (inputs in [0,1]), one value per image.

Two sets of weights are involved:

* the five linear layers ("lin", v0.1) ship inside the ``lpips`` package
  (``lpips/weights/v0.1/alex.pth``);
* the AlexNet backbone is torchvision's ImageNet checkpoint ``alexnet-owt-7be5be79.pth``,
  which torchvision would download into ``torch.hub.get_dir()/checkpoints`` on first use.

Nothing here downloads. The backbone is built without weights and filled from that file
if it is there; if it is not (or cannot be read), LPIPS is *unavailable*: in mode
``"auto"`` every value is NaN and one warning per :class:`LPIPSMetric` says where to put
the file; in mode ``"required"`` construction raises :class:`LPIPSUnavailableError` with
the same line; mode ``"off"`` never touches it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from dpdeblur.errors import DpdeblurError
from dpdeblur.metrics._checks import MetricError, check_choice, check_pair

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
LPIPS_MODES = ("auto", "required", "off")

# torchvision's AlexNet ``features`` convolutions and the lpips slice that holds each one.
_ALEX_CONV_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
_LIN_KEYS = tuple(f"lin{i}.model.1.weight" for i in range(5))


class LPIPSUnavailableError(DpdeblurError):
    """LPIPS was required but its AlexNet backbone weights are missing or unreadable."""


class LPIPSUnavailableWarning(UserWarning):
    """LPIPS is reported as NaN because its AlexNet backbone weights are missing."""


def alexnet_weights_path() -> Path:
    """Where torchvision keeps (and lpips looks for) the AlexNet backbone weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def check_lpips_mode(mode: str | bool | None) -> str:
    """Canonical LPIPS mode. YAML reads a bare ``off``/``on`` as a boolean, hence
    ``False``/``None`` mean ``"off"`` and ``True`` means ``"auto"``."""
    if mode is None or mode is False:
        return "off"
    if mode is True:
        return "auto"
    return check_choice(mode, LPIPS_MODES, "LPIPS mode", "metrics.lpips=required")


def _unavailable(problem: str, path: Path) -> LPIPSUnavailableError:
    return LPIPSUnavailableError(
        f"LPIPS unavailable: {problem} (torchvision's ImageNet AlexNet, needed by lpips; "
        "dpdeblur never downloads it)",
        path,
        f"copy {ALEXNET_FILE} (from {ALEXNET_URL}, or from ~/.cache/torch/hub/checkpoints of "
        f"a machine with network) to {path}, or point TORCH_HOME at a folder whose "
        "hub/checkpoints holds it; until then LPIPS is reported as NaN "
        "(metrics.lpips=off skips it, metrics.lpips=required makes this an error)",
    )


def _alexnet_features(path: Path) -> dict[str, Tensor]:
    """The backbone's conv weights from torchvision's checkpoint, keyed as lpips names them."""
    if not path.is_file():
        raise _unavailable("AlexNet backbone weights not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file means the same thing to the user
        raise _unavailable(f"cannot read AlexNet weights ({type(error).__name__})", path) from error
    mapped = {}
    for index, slice_number in _ALEX_CONV_SLICES.items():
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if not isinstance(state, dict) or key not in state:
                raise _unavailable(f"not a torchvision AlexNet checkpoint (no {key})", path)
            mapped[f"slice{slice_number}.{index}.{kind}"] = state[key]
    return mapped


def build_lpips_alex(weights_path: Path) -> nn.Module:
    """``lpips.LPIPS(net='alex', version='0.1')`` in eval mode, built without any download:
    the backbone from ``weights_path``, the linear layers from the ``lpips`` package."""
    features = _alexnet_features(weights_path)  # fails before lpips is even imported
    import lpips  # deferred: importing lpips pulls in scipy and tqdm

    with warnings.catch_warnings():
        # torchvision's "pretrained is deprecated" notices from inside lpips
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(
            pretrained=False, net="alex", version="0.1", pnet_rand=True, verbose=False
        )
    try:
        model.net.load_state_dict(features, strict=True)
    except RuntimeError as error:
        raise _unavailable("AlexNet weights have the wrong shapes", weights_path) from error
    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    if set(lin_state) != set(_LIN_KEYS):
        raise DpdeblurError(
            f"unexpected LPIPS linear-layer weights (keys {sorted(lin_state)})",
            lin_path,
            "reinstall the lpips package (pip install --force-reinstall lpips)",
        )
    model.load_state_dict(lin_state, strict=False)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class LPIPSMetric:
    """LPIPS per image, shape (B,), float64; NaN while unavailable (see module docstring).

    A plain object, not an ``nn.Module``: it stays out of a LightningModule's state dict and
    moves its network to the input's device on each call. The network is built on first
    use (or at construction in ``"required"`` mode, so a missing file fails a run early).
    """

    def __init__(self, mode: str | bool | None = "auto", weights_path: str | Path | None = None):
        self.mode = check_lpips_mode(mode)
        self._weights_path = None if weights_path is None else Path(weights_path)
        self._model: nn.Module | None = None
        self._error: LPIPSUnavailableError | None = None
        self._warned = False
        if self.mode == "required":
            self._load()

    @property
    def weights_path(self) -> Path:
        """The backbone file in use (resolved from torch hub's folder at each access)."""
        return self._weights_path or alexnet_weights_path()

    @property
    def available(self) -> bool:
        """Whether LPIPS gives numbers (the file exists and, once loaded, loaded)."""
        if self.mode == "off" or self._error is not None:
            return False
        return self._model is not None or self.weights_path.is_file()

    def _load(self) -> nn.Module | None:
        if self._model is None and self._error is None:
            try:
                self._model = build_lpips_alex(self.weights_path)
            except LPIPSUnavailableError as error:
                if self.mode == "required":
                    raise
                self._error = error
        return self._model

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        check_pair(pred, target, "lpips")
        nan = torch.full((pred.shape[0],), float("nan"), dtype=torch.float64, device=pred.device)
        if self.mode == "off":
            return nan
        model = self._load()
        if model is None:
            if not self._warned:
                warnings.warn(str(self._error), LPIPSUnavailableWarning, stacklevel=2)
                self._warned = True
            return nan
        if pred.shape[1] != 3:
            raise MetricError(f"LPIPS needs RGB images, got {pred.shape[1]} channels")
        model.to(pred.device)
        with torch.no_grad(), torch.autocast(pred.device.type, enabled=False):
            x = pred.clamp(0.0, 1.0).float()
            y = target.float()
            value = model(x, y, normalize=True)
        return value.flatten().to(torch.float64)
