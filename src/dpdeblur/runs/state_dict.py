"""Comparing a state dict with a model, and loading it only when it fits.

:func:`diff_state_dict` is the one comparison of weights with a model: the model's keys
without a tensor (missing), the tensors the model has no place for (unexpected) and the
tensors of another shape (wrong shape). Every loader and converter of this package checks
weights through :func:`check_fits` (or :func:`load_strict`, which also loads them), so a
checkpoint of another model or width is refused with the same one-line
:class:`~dpdeblur.errors.CheckpointError` naming the first keys, wherever it is met.

K3DN's two-stage recipe loads a stage-1 network (trained without the sharp-region blocks)
into the full stage-2 model: :func:`load_stage1_state_dict` leaves out the keys under the
model's ``stage2_prefixes`` and checks everything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from dpdeblur.errors import CheckpointError

# Keys named in a summary before "and N more"; in a one-line error, fewer.
SHOWN_KEYS = 3
ERROR_KEYS = 2


@dataclass(frozen=True)
class StateDictDiff:
    """How a state dict differs from a model's, key by key (each list sorted)."""

    missing: list[str]  # the model's keys without a tensor
    unexpected: list[str]  # given keys the model has no place for
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, given, model
    shared: int | None = None  # keys both have (None: not counted)

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def disjoint(self) -> bool:
        """No key in common: the weights of another architecture, not another width."""
        return self.shared == 0 and bool(self.missing) and bool(self.unexpected)

    def summary(self, shown: int = SHOWN_KEYS) -> str:
        """``2 missing keys (a, b); 1 wrong shape (c (3, 8) vs (3, 16))``: counts and the
        first ``shown`` keys of each kind."""
        shapes = [f"{key} {given} vs {own}" for key, given, own in self.wrong_shape]
        parts = []
        for label, keys in (
            ("missing keys", self.missing),
            ("unexpected keys", self.unexpected),
            ("wrong shape", shapes),
        ):
            if keys:
                names = ", ".join(keys[:shown])
                more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
                parts.append(f"{len(keys)} {label} ({names}{more})")
        return "; ".join(parts) or "the weights fit"


def diff_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], ignore_prefixes: Iterable[str] = ()
) -> StateDictDiff:
    """Compare ``state`` with ``model.state_dict()``; the model's keys under
    ``ignore_prefixes`` are neither required nor accepted."""
    prefixes = tuple(ignore_prefixes)
    own = {k: v for k, v in model.state_dict().items() if not (prefixes and k.startswith(prefixes))}
    common = sorted(set(own) & set(state))
    return StateDictDiff(
        missing=sorted(set(own) - set(state)),
        unexpected=sorted(set(state) - set(own)),
        wrong_shape=[
            (k, tuple(state[k].shape), tuple(own[k].shape))
            for k in common
            if state[k].shape != own[k].shape
        ],
        shared=len(common),
    )


def check_fits(
    model: nn.Module,
    state: Mapping[str, Tensor],
    path: str | Path | None,
    problem: str,
    fix: str,
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Raise ``CheckpointError("<problem>: <summary>", path, fix)`` unless ``state`` fits:
    one line however large the models, with the counts and the first keys of each kind."""
    diff = diff_state_dict(model, state, ignore_prefixes)
    if not diff.fits:
        another = " (no key in common: another architecture's weights)" if diff.disjoint else ""
        raise CheckpointError(f"{problem}{another}: {diff.summary(ERROR_KEYS)}", path, fix)


def model_name(model: nn.Module) -> str:
    """The registry name the model was built under (its class name otherwise)."""
    return str(getattr(model, "registry_name", type(model).__name__))


def load_strict(
    model: nn.Module,
    state: Mapping[str, Tensor],
    path: str | Path | None = None,
    fix: str = "is this a checkpoint of another model or width? pass the matching model",
) -> nn.Module:
    """Load ``state`` into ``model`` after checking it fits exactly; returns ``model``."""
    check_fits(model, state, path, f"weights do not fit model '{model_name(model)}'", fix)
    model.load_state_dict(dict(state), strict=True)
    return model


def load_stage1_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], path: str | Path | None = None
) -> nn.Module:
    """Load a stage-1 network into a two-stage ``model`` (K3DN): every key but those under
    the model's ``stage2_prefixes`` (blocks added in stage 2, which keep their
    initialisation) must be there, with its shape."""
    prefixes = tuple(getattr(model, "stage2_prefixes", ()))
    if not prefixes:
        raise CheckpointError(
            f"model '{model_name(model)}' has no second stage (no stage2_prefixes)",
            path,
            "use a two-stage model such as k3dn",
        )
    check_fits(
        model,
        state,
        path,
        f"not a stage-1 checkpoint of this '{model_name(model)}' configuration",
        "train stage 1 with the same sizes and without the stage-2 blocks "
        f"({', '.join(p.rstrip('.') for p in prefixes)})",
        ignore_prefixes=prefixes,
    )
    model.load_state_dict(dict(state), strict=False)
    return model
