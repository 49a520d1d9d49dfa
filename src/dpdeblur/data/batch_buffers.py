"""Shared-memory batch buffers that data-loader workers write again once the training
process no longer holds the batch in them (docs/data.md, "Feeding a GPU").

A data-loader worker hands a batch to the training process through shared memory. Writing
each batch into fresh shared memory costs the worker more than the copy itself: the kernel
zero-fills and maps every page anew (a 4x3x512x512 uint16 view: about 2.4 ms fresh against
0.8 ms into pages already mapped), and the training process maps the new file too. So each
worker keeps a few buffers and writes its next batch into one whose last batch is gone.

"Gone" is decided where the batch is read, so a buffer is never written while anything may
still read it:

- :class:`SharedBatchBuffers` (one per dataset, made in the training process before the
  workers start) holds a shared flag per worker buffer: the generation of the batch in it,
  0 once that batch is gone.
- In a worker, :meth:`SharedBatchBuffers.batch_tensors` takes a buffer whose flag is 0 (or
  makes one), sets the flag, and returns its tensors with a :class:`BufferLease`, which
  travels with the batch (each sample carries it under :data:`BUFFERS_KEY`).
- A buffer is one piece of shared memory (one storage) holding all the batch's images.
  In the training process the lease arrives with the batch and watches that storage:
  when the last tensor on it is freed, whichever path dropped it (the copy to the GPU done, the float conversion
  done, a view kept by the user released later), the flag goes back to 0. A generation
  check makes a late notice harmless.

While a worker's buffers are all held (a consumer that keeps its batches, ``list(loader)``),
it writes into fresh shared memory, as without buffers.
"""

from __future__ import annotations

import math
import secrets
import weakref
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

# The sample entry that carries a batch's buffer lease (an id string once it has arrived;
# a list of them, one per sample, once collated).
BUFFERS_KEY = "_buffers"
# Buffers per worker: a worker has at most ``prefetch_factor`` (2) batches waiting to be
# consumed, and the training process holds the one it trains on; one more spare.
BUFFERS_PER_WORKER = 4
# Workers a flag array has room for; workers beyond it write into fresh memory.
MAX_WORKERS = 64
# Each tensor of a buffer starts at a multiple of 64 elements (128 bytes).
ALIGN = 64

# token -> flags, for the buffer sets made in this process (where their batches arrive).
_FLAGS: dict[str, np.ndarray] = {}


def fresh_shared(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """uint16 tensors of ``shapes`` side by side in one piece of new shared memory (what a
    worker sends without a copy; one piece, so that one storage tells when the batch is
    gone)."""
    offsets, total = {}, 0
    for key, shape in shapes.items():
        offsets[key] = total
        total += -(-math.prod(shape) // ALIGN) * ALIGN
    storage = torch.UntypedStorage._new_shared(max(total, 1) * 2)
    return {
        key: torch.empty(0, dtype=torch.uint16).set_(storage, offsets[key], shape)
        for key, shape in shapes.items()
    }


def _release(token: str, slot: int, generation: int) -> None:
    """The batch of generation ``generation`` in buffer ``slot`` is gone: free the buffer,
    unless a later batch holds it already."""
    flags = _FLAGS.get(token)
    if flags is not None and flags[slot] == generation:
        flags[slot] = 0


def _arrived(token: str, slot: int, generation: int, tensor: torch.Tensor) -> str:
    """Unpickling a :class:`BufferLease` in the training process: watch the storage the
    batch's tensors were rebuilt on (all of them share it); the lease becomes its id."""
    # A storage keeps its Python object while any tensor uses it: the callback runs when
    # the last tensor on the buffer (the batch's images, any view of them) is freed.
    watch = weakref.finalize(tensor.untyped_storage(), _release, token, slot, generation)
    watch.atexit = False
    return f"{token}:{slot}:{generation}"


class BufferLease(str):
    """A worker's claim on one of its buffers for one batch (see the module docstring):
    its id ``token:slot:generation``, a string, so that any collate function passes it on
    (``default_collate`` as a list, one per sample).

    Pickled with the batch, it carries one of the batch's tensors (its storage is the
    buffer: the same one on arrival as the batch's images) and becomes, in the receiving
    process, the plain id string, the buffer watched.
    """

    def __new__(cls, token: str, slot: int, generation: int, tensor: torch.Tensor):
        lease = super().__new__(cls, f"{token}:{slot}:{generation}")
        lease.token, lease.slot, lease.generation = token, slot, generation
        lease.tensor = tensor
        return lease

    def __reduce__(self) -> tuple:
        return _arrived, (self.token, self.slot, self.generation, self.tensor)


class SharedBatchBuffers:
    """Per-worker shared-memory buffers for uint16 batches, written again once the batch in
    them is gone from the training process.

    Args:
        per_worker: buffers each worker keeps.
        max_workers: workers the shared flags have room for.
    """

    def __init__(self, per_worker: int = BUFFERS_PER_WORKER, max_workers: int = MAX_WORKERS):
        self.token = secrets.token_hex(8)
        self.per_worker = int(per_worker)
        self.flags = torch.zeros(max_workers * self.per_worker, dtype=torch.int64)
        self.flags.share_memory_()
        self._held: dict[int, dict[str, torch.Tensor]] = {}  # this worker's buffers
        self._generation = 0
        _FLAGS[self.token] = self.flags.numpy()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_held"] = {}  # buffers belong to the process that made them
        return state

    def batch_tensors(
        self, shapes: dict[str, tuple[int, ...]]
    ) -> tuple[dict[str, torch.Tensor], BufferLease | None]:
        """uint16 tensors of ``shapes`` for one batch, and the lease that travels with it.

        In a data-loader worker: the tensors of a free buffer of this worker (made on first
        use, made again when the shapes change), claimed by the returned lease; fresh
        shared memory and no lease where all are held. Outside a worker: ordinary tensors
        and no lease (nothing crosses processes).
        """
        worker = get_worker_info()
        if worker is None:
            empty = {key: torch.empty(shape, dtype=torch.uint16) for key, shape in shapes.items()}
            return empty, None
        flags = self.flags.numpy()
        first = worker.id * self.per_worker
        for slot in range(first, min(first + self.per_worker, len(flags))):
            if flags[slot]:
                continue
            held = self._held.get(slot)
            if held is None or {k: tuple(t.shape) for k, t in held.items()} != shapes:
                held = self._held[slot] = fresh_shared(shapes)
            self._generation += 1
            flags[slot] = self._generation
            lease = BufferLease(self.token, slot, self._generation, next(iter(held.values())))
            return held, lease
        return fresh_shared(shapes), None
