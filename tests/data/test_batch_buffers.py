"""Loader workers write batches again into shared-memory buffers the training process no
longer holds (``dpdeblur.data.batch_buffers``), and never into one it still reads."""

from __future__ import annotations

import gc

import torch

from dpdeblur.data.batch_buffers import (
    BUFFERS_KEY,
    SharedBatchBuffers,
    _arrived,
    _release,
    fresh_shared,
)
from dpdeblur.training.datamodule import DPDataModule

VIEWS = ("left", "right", "target")


def training_loader(root, workers: int):
    dm = DPDataModule(
        "dpdd",
        root=str(root),
        batch_size=2,
        num_workers=workers,
        crop_size=8,
        train_repeats=6,  # 4 images x 6 = 12 batches an epoch
        crop_seed=3,
    )
    return dm.train_dataloader()


def expected_batches(root) -> list[dict]:
    """The same epoch loaded in this process (no buffers: nothing crosses processes)."""
    return list(training_loader(root, 0))


def test_a_worker_writes_into_its_buffers_again_once_batches_are_dropped(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 4}, size=(20, 28))
    expected = expected_batches(root)
    assert all(BUFFERS_KEY not in batch for batch in expected)
    leases = []
    for batch, wanted in zip(training_loader(root, 1), expected, strict=True):
        for view in VIEWS:
            assert torch.equal(batch[view], wanted[view])
        leases.append(batch[BUFFERS_KEY][0])  # one id per sample, all alike
        del batch  # a training step drops it after the copy to the GPU
    # every batch came in a buffer (none left held), and buffers were written again
    slots = [lease.split(":")[1] for lease in leases]
    assert len(leases) == 12 and len(set(slots)) < len(leases)
    assert len({lease.split(":")[2] for lease in leases}) == 12  # a generation per batch


def test_batches_kept_by_the_consumer_are_never_written_over(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 4}, size=(20, 28))
    expected = expected_batches(root)
    kept = list(training_loader(root, 1))  # every batch held: no buffer comes free
    assert [BUFFERS_KEY in batch for batch in kept].count(True) <= 4  # then fresh memory
    # only a view of each batch kept, the batch itself dropped: the view still holds it
    views = [batch["left"][1] for batch in training_loader(root, 1)]
    gc.collect()
    for batch, view, wanted in zip(kept, views, expected, strict=True):
        for key in VIEWS:
            assert torch.equal(batch[key], wanted[key])
        assert torch.equal(view, wanted["left"][1])


def test_a_late_notice_does_not_free_a_buffer_a_later_batch_holds():
    buffers = SharedBatchBuffers(per_worker=1, max_workers=1)
    buffers.flags[0] = 5  # generation 5 holds buffer 0
    _release(buffers.token, 0, 4)  # the batch of generation 4 is gone: too late to matter
    assert int(buffers.flags[0]) == 5
    (images,) = fresh_shared({"left": (2, 3)}).values()
    assert _arrived(buffers.token, 0, 5, images) == f"{buffers.token}:0:5"
    view = images[1]
    del images
    gc.collect()
    assert int(buffers.flags[0]) == 5  # still held while a tensor on its storage lives
    del view
    gc.collect()
    assert int(buffers.flags[0]) == 0


def test_a_buffer_is_one_storage_for_all_the_images_of_a_batch():
    tensors = fresh_shared({"left": (2, 3, 5, 7), "right": (2, 3, 5, 7), "target": (1, 9)})
    storages = {t.untyped_storage().data_ptr() for t in tensors.values()}
    assert len(storages) == 1 and tensors["target"].shape == (1, 9)
    for index, tensor in enumerate(tensors.values()):
        tensor.fill_(index + 1)
    assert [int(t.int().min()) for t in tensors.values()] == [1, 2, 3]  # no overlap
