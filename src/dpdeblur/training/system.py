"""``DeblurSystem``: the LightningModule that trains and scores any registry model.

docs/design.md, "How data flows", steps 3-4: the module calls ``model(left, right)``, the loss
is a weighted sum of named terms (each logged as ``train/<term>``), and validation/test
compute the protocol metrics per image (:class:`dpdeblur.metrics.MetricSuite`), keep one
row per image (name, split, indoor/outdoor, every metric, and the blurry input's metrics,
``input_*``, scored under the same protocol for reference), write them as CSV into the run directory, log the means, and draw image panels
(left, right, output, target, |error|) for a few fixed validation samples. Validation and
test run without autocast (float32 with ``trainer.precision=bf16-mixed``), so a run's
scores are those ``dpdeblur-eval`` gives its checkpoints.

Every rank returns its loss from every training step, finite or not (under DDP a rank that
skipped its backward pass would leave the others waiting); the module keeps the step's
per-term losses (``last_terms``) for :class:`dpdeblur.training.nonfinite.NonFiniteGuard`,
which skips a step whose loss is non-finite on any rank, on every rank, and stops the run
when that persists.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from dpdeblur.data.panels import comparison_row, render_panel, save_panel
from dpdeblur.metrics import MetricSuite
from dpdeblur.models.output import output_image
from dpdeblur.nn.layout import to_channels_last

ROW_FIELDS = (
    "name",
    "split",
    "scene",
    "psnr",
    "ssim",
    "mae",
    "lpips",
    "input_psnr",
    "input_ssim",
    "input_mae",
    "input_lpips",
    "bit_depth",
    "height",
    "width",
)


class DeblurSystem(L.LightningModule):
    """Any model + any loss + metrics + image logging.

    Args:
        model: the network, called as ``model(left, right)``.
        loss: ``loss(output, batch) -> (total, {term: value})`` (:class:`dpdeblur.training.losses.CompositeLoss`).
        optimizer: a partial, ``optimizer(params) -> Optimizer`` (Hydra ``_partial_: true``).
        scheduler: a partial, ``scheduler(optimizer) -> LRScheduler``; or None.
        scheduler_interval: step the scheduler every "epoch" (default) or every "step".
        metrics: ``{protocol, lpips, num_panels}`` (``conf/metrics/default.yaml``).
        model_config: the model's config (``_target_``, name, kwargs); stored in checkpoints
            so ``dpdeblur-eval`` and ``dpdeblur-deblur`` can rebuild the model.
        output_dir: run directory for the per-image CSVs and panels (None: don't write).
        channels_last: keep weights and input views in NHWC layout. On CPUs oneDNN runs
            convolutions faster that way (``dpdeblur-bench cpu-train``; docs/benchmarks.md,
            "CPU training step"); the numbers are those of NCHW.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        metrics: Mapping[str, Any] | None = None,
        model_config: Mapping[str, Any] | None = None,
        output_dir: str | None = None,
        scheduler_interval: str = "epoch",
        channels_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model", "loss", "optimizer", "scheduler", "output_dir"])
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = to_channels_last(model) if channels_last else model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler or None
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.scheduler_interval = scheduler_interval
        metrics = dict(metrics or {})
        self.num_panels = int(metrics.pop("num_panels", 3))
        self.metric_options = {
            "protocol": metrics.get("protocol", "16bit"),
            "lpips": metrics.get("lpips", "auto"),
        }
        self._suite: MetricSuite | None = None
        self.output_dir = Path(output_dir) if output_dir else None
        self.rows: dict[str, list[dict]] = {"val": [], "test": []}
        self.panels: list[list[np.ndarray]] = []  # panel rows of this validation
        self.last_terms: dict[str, Tensor] = {}  # this training step's loss terms (detached)

    # -- metrics ----------------------------------------------------------------------
    @property
    def suite(self) -> MetricSuite:
        if self._suite is None:
            self._suite = MetricSuite(**self.metric_options)
        return self._suite

    def forward(self, left: Tensor, right: Tensor):
        return self.model(
            left.contiguous(memory_format=self.memory_format),
            right.contiguous(memory_format=self.memory_format),
        )

    # -- training ---------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        output = self(batch["left"], batch["right"])
        total, terms = self.loss(output, batch)
        self.last_terms = {name: value.detach() for name, value in terms.items()}
        batch_size = batch["left"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return total

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("DeblurSystem needs an optimizer to train (config group `optimizer`)")
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if not self.scheduler_factory:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

    # -- evaluation -------------------------------------------------------------------
    def _score(self, batch: dict, split: str, batch_idx: int) -> None:
        # Scored without autocast whatever trainer.precision says (bf16-mixed is for the
        # training steps): the weights are float32, and so are dpdeblur-eval's scores of them.
        with torch.autocast(self.device.type, enabled=False):
            prediction = output_image(self(batch["left"], batch["right"])).clamp(0, 1)
        values = self.suite(prediction, batch["target"])
        # the blurry input (the mean of the views), under the same protocol: the reference
        source = self.suite(batch["combined"], batch["target"]) if "combined" in batch else {}
        height, width = batch["target"].shape[-2:]
        for i, name in enumerate(batch["name"]):
            row = {
                "name": name,
                "split": split,
                "scene": batch["scene"][i] if "scene" in batch else "",
                "bit_depth": int(batch["bit_depth"][i]),
                "height": int(height),
                "width": int(width),
            }
            row.update({k: float(v[i]) for k, v in values.items()})
            row.update({f"input_{k}": math.nan for k in values})
            row.update({f"input_{k}": float(v[i]) for k, v in source.items()})
            self.rows[split].append(row)
        if split == "val" and batch_idx < self.num_panels:
            self.panels.append(
                comparison_row(
                    batch["left"][0], batch["right"][0], prediction[0], batch["target"][0]
                )
            )

    def on_validation_epoch_start(self) -> None:
        self.rows["val"] = []
        self.panels = []

    def on_test_epoch_start(self) -> None:
        self.rows["test"] = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._score(batch, "val", batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._score(batch, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        rows = self._finish_split("val")
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._log_panels()
        self.rows["val"] = rows

    def on_test_epoch_end(self) -> None:
        self.rows["test"] = self._finish_split("test")

    def _finish_split(self, split: str) -> list[dict]:
        rows = gather_rows(self.rows[split])
        means = summarise(rows)
        for key, value in means.items():
            self.log(f"{split}/{key}", value, sync_dist=False, rank_zero_only=False)
        if (
            self.output_dir is not None
            and self.trainer.is_global_zero
            and not self.trainer.sanity_checking
        ):
            write_rows(self.output_dir / f"{split}_images.csv", rows)
        return rows

    def _log_panels(self) -> None:
        if not self.panels:
            return
        grid = render_panel(self.panels)
        if self.output_dir is not None:
            save_panel(grid, self.output_dir / "panels" / f"val_epoch{self.current_epoch:03d}.png")
        for logger in self.loggers:
            log_image = getattr(logger, "log_image", None)
            if callable(log_image):  # wandb
                log_image(key="val/panels", images=[grid], step=self.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):  # tensorboard
                logger.experiment.add_image("val/panels", grid, self.global_step, dataformats="HWC")


def gather_rows(rows: list[dict]) -> list[dict]:
    """All ranks' per-image rows (DDP), in name order, duplicates (padding) removed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        everything: list[list[dict]] = [[] for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather_object(everything, rows)
        rows = [row for part in everything for row in part]
    unique = {row["name"]: row for row in rows}
    return [unique[name] for name in sorted(unique)]


SUMMARISED = ("psnr", "ssim", "mae", "lpips")


def summarise(rows: list[dict]) -> dict[str, float]:
    """Means over images of every metric and of the input's (``input_psnr``, ...), and the
    same per scene (``psnr_indoor``, ``images_indoor``, ...) where labelled."""
    if not rows:
        return {}
    keys = [*SUMMARISED, *(f"input_{k}" for k in SUMMARISED)]
    metrics = [k for k in keys if k in rows[0]]
    means = {k: float(np.mean([row[k] for row in rows])) for k in metrics}
    means["images"] = float(len(rows))
    for scene in sorted({row["scene"] for row in rows if row.get("scene")}):
        subset = [row for row in rows if row.get("scene") == scene]
        means.update({f"{k}_{scene}": float(np.mean([row[k] for row in subset])) for k in metrics})
        means[f"images_{scene}"] = float(len(subset))
    return means


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [f for f in ROW_FIELDS if not rows or f in rows[0]]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
