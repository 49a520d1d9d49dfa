"""Resuming a run where it stopped: which checkpoint, the data position, the random state.

- ``ckpt_path=last`` (:func:`last_checkpoint_of`): this run directory's ``last.ckpt``, else
  the newest one of an earlier run of the same experiment; an error when there is none.
- ``ckpt_path=auto`` (:func:`auto_checkpoint`): this run directory's ``last.ckpt``, else the
  newest ``last.ckpt`` of an earlier run of the same command (the same experiment, run name
  and command-line overrides; never another job of this sweep); a fresh start when there is
  none. The table sweeps use it, so a SLURM job that is requeued, or a sweep started again
  with the same command, goes on from each job's last save.
- :class:`ResumableDataLoader`: Lightning restores the step, the optimiser, the schedulers
  and the callbacks, but a plain ``DataLoader`` starts its epoch again from the first batch.
  This one records how many batches of the epoch training has consumed (in the
  checkpoint's loop state) and starts there again, skipping the indices of the batches
  already trained on without loading them.
- :func:`rng_state` / :func:`set_rng_state`: the random generators of torch (CPU and CUDA),
  numpy and Python, which ``last.ckpt`` carries
  (:class:`~dpdeblur.training.callbacks.FinalCheckpoint`), as tensors and plain numbers.

With all three, a run killed mid-epoch and started again with ``ckpt_path=auto`` reaches
the weights of an uninterrupted run (``tests/training/test_resume_kill.py``), for data whose
samples are a function of their epoch and index (the synthetic stream, DPDD's crops).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from dpdeblur.errors import CheckpointError
from dpdeblur.runs.find import find_runs, last_checkpoint

LAST = "last.ckpt"
# Overrides that do not change what a run computes, left out when runs are compared.
NOT_COMPARED = ("ckpt_path=", "hydra.", "hydra/", "+hydra", "paths.")


# -- which checkpoint -------------------------------------------------------------------------
def last_checkpoint_of(cfg: DictConfig, output_dir: Path) -> Path:
    """``ckpt_path=last``: this run directory's ``last.ckpt``, else the newest ``last.ckpt``
    of an earlier run of the same experiment under ``log_dir/task_name``."""
    roots = Path(cfg.paths.log_dir, cfg.task_name)
    found = last_checkpoint(output_dir, [roots], cfg.experiment_name)
    if found is None:
        raise CheckpointError(
            f"ckpt_path=last but no last.ckpt of experiment '{cfg.experiment_name}' exists",
            roots,
            "train first, pass ckpt_path=auto (resume if there is one), or ckpt_path=/path/to/last.ckpt",
        )
    return found


def compared(overrides: Iterable[str]) -> tuple[str, ...]:
    """The overrides that decide what a run computes, sorted (``ckpt_path``, Hydra's and
    the paths' left out)."""
    return tuple(sorted(o for o in overrides if not str(o).startswith(NOT_COMPARED)))


def auto_checkpoint(
    cfg: DictConfig,
    output_dir: Path,
    overrides: Sequence[str] | None = None,
    sweep_dir: Path | None = None,
) -> Path | None:
    """``ckpt_path=auto``: the checkpoint to resume, None for a fresh start.

    This run directory's own ``last.ckpt`` first (a requeued SLURM job runs again in its
    folder); else the newest ``last.ckpt`` below ``log_dir/task_name`` of a run with the
    same ``experiment_name`` and ``run_name`` and, where both runs know them (Hydra's
    ``.hydra/overrides.yaml``), the same ``overrides`` but for ``ckpt_path`` and paths.
    Runs in ``sweep_dir`` (the other jobs of this multirun) never count.
    """
    own = Path(output_dir) / "checkpoints" / LAST
    if own.is_file():
        return own
    wanted = compared(overrides) if overrides is not None else None
    found = []
    for run in find_runs([Path(cfg.paths.log_dir, cfg.task_name)], strict=False):
        checkpoint = run.path / "checkpoints" / LAST
        if not checkpoint.is_file() or run.path.resolve() == Path(output_dir).resolve():
            continue
        if sweep_dir is not None and run.path.parent.resolve() == Path(sweep_dir).resolve():
            continue
        if run.get("experiment_name") != cfg.experiment_name:
            continue
        if run.get("run_name") != cfg.get("run_name"):
            continue
        if wanted is not None and run.overrides and compared(run.overrides) != wanted:
            continue
        found.append(checkpoint)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# -- the data position ------------------------------------------------------------------------
class _SkipFirst:
    """A loader's index sampler, less its first ``skip`` batches, its order drawn from the
    torch random state ``replay`` when one is given (the state the interrupted epoch drew
    it from). ``drawn_from`` is the state the latest iteration drew its order from. It
    holds no reference to the loader: the loader's worker iterator keeps it, and a cycle
    would delay the workers' exit."""

    def __init__(self, base: Any):
        self.base = base
        self.skip = 0
        self.replay: Tensor | None = None
        self.drawn_from: Tensor | None = None

    def __iter__(self) -> Iterator[Any]:
        return self._batches(self.skip, self.replay)

    def _batches(self, skip: int, replay: Tensor | None) -> Iterator[Any]:
        # runs at the first batch, where a shuffling sampler draws its order
        current = torch.get_rng_state()
        if replay is not None:
            torch.set_rng_state(replay)
        self.drawn_from = torch.get_rng_state()
        iterator = iter(self.base)
        try:
            first = next(iterator)
        except StopIteration:
            return
        finally:
            if replay is not None:  # the rest of the process goes on as it was
                torch.set_rng_state(current)
        yield from itertools.islice(itertools.chain([first], iterator), skip, None)

    def __len__(self) -> int:
        return len(self.base)


class _Counted:
    """An iterator over a loader's batches that counts them for its state."""

    def __init__(self, iterator: Iterator[Any], loader: ResumableDataLoader):
        self.iterator = iterator
        self.loader = loader

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        batch = next(self.iterator)
        self.loader._yielded += 1
        return batch

    def __len__(self) -> int:
        return len(self.iterator)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that Lightning resumes mid-epoch (``state_dict`` / ``load_state_dict``).

    Its state is the epoch of its sampler, the batches of that epoch training consumed, and
    torch's random state where the epoch drew its order. Loading it sets the sampler's
    epoch and makes the next iteration draw its order from that state again (a shuffling
    sampler draws the same order) and skip the consumed batches' indices (nothing is loaded
    or rendered for them). So the rest of the epoch has the same samples in the same order.
    The samples themselves are the same where they are a function of their epoch and index
    (the synthetic stream, DPDD's :class:`~dpdeblur.data.streams.RandomCrops`); random
    choices a dataset draws from a data-loader worker's own generator would differ (the
    workers' generators are not saved). Only methods are added to ``DataLoader``, so
    :func:`make_resumable` can turn a loader built elsewhere into one.
    """

    # Batches drawn are batches consumed: Lightning's training loop fetches ahead only from
    # loaders without a length (its ``_PrefetchDataFetcher``), and this one has one.
    _pending_skip = 0  # batches to skip at the next iteration (set by load_state_dict)
    _pending_replay: Tensor | None = None  # the random state to draw its order from
    _yielded = 0  # batches of this epoch drawn, skipped ones included

    @property
    def _index_sampler(self) -> _SkipFirst:
        skipper = self.__dict__.get("_skipper")
        if skipper is None:  # one per loader: worker iterators keep the first they see
            skipper = self.__dict__["_skipper"] = _SkipFirst(super()._index_sampler)
        return skipper

    def __iter__(self) -> _Counted:
        skipper = self._index_sampler
        skipper.skip, self._pending_skip = self._pending_skip, 0
        skipper.replay, self._pending_replay = self._pending_replay, None
        self._yielded = skipper.skip
        iterator = super().__iter__()
        skipper.skip, skipper.replay = 0, None  # persistent workers reset for the next epoch
        return _Counted(iterator, self)

    def _sampler_epoch(self) -> int | None:
        epoch = getattr(self.sampler, "epoch", None)
        return None if epoch is None else int(epoch)

    def _set_sampler_epoch(self, epoch: int) -> None:
        for sampler in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
            set_epoch = getattr(sampler, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._sampler_epoch(),
            "batches": self._yielded,
            "rng": self._index_sampler.drawn_from,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, batches = state.get("epoch"), int(state.get("batches") or 0)
        if batches >= len(self):  # the epoch was complete: the next one starts afresh
            epoch, batches = (None if epoch is None else int(epoch) + 1), 0
        if epoch is not None:
            self._set_sampler_epoch(int(epoch))
        self._pending_skip = batches
        self._pending_replay = state.get("rng") if batches else None


def make_resumable(loader: Any) -> Any:
    """``loader`` as a :class:`ResumableDataLoader` (the same object: only its class
    changes, which adds methods and no state). Loaders of other classes, and loaders of an
    ``IterableDataset`` (no indices to skip), are returned as they are."""
    if type(loader) is DataLoader and not isinstance(loader.dataset, IterableDataset):
        loader.__class__ = ResumableDataLoader
    return loader


def resumable_train_loader(datamodule: Any) -> None:
    """Make the training loaders ``datamodule`` returns resumable mid-epoch."""
    build = datamodule.train_dataloader

    def train_dataloader() -> Any:
        return make_resumable(build())

    datamodule.train_dataloader = train_dataloader


# -- the random state -------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of torch's CPU (and initialised CUDA) generators, numpy's and Python's,
    as tensors and plain numbers (a checkpoint loads them with ``weights_only=True``)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (the parts present)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        saved = state["numpy"]
        keys = np.asarray(saved["keys"].numpy(), dtype=np.uint32)
        np.random.set_state(
            (saved["name"], keys, saved["position"], saved["has_gauss"], saved["gauss"])
        )
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
