"""A bare dpdeblur-train is a short CPU run; the tools start without Lightning (issue 19)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dpdeblur.errors import ConfigError
from dpdeblur.hardware import cpu_has_native_bf16
from dpdeblur.training.config import PRECISION_ENV, compose_config, fast_precision


def test_the_defaults_compose_to_a_short_cpu_run_on_synthetic_data(tmp_path):
    cfg = compose_config("train", [], tmp_path)
    assert cfg.experiment_name == "quickstart" and cfg.run_name == "quickstart"
    assert cfg.trainer.accelerator == "cpu" and 0 < cfg.trainer.max_steps <= 1000
    assert cfg.data.dataset == "synthetic" and cfg.data.root is None
    assert cfg.data.synthetic.train_length <= 1000 and max(cfg.data.synthetic.size) <= 128
    assert cfg.data.synthetic.val_length <= 16 and cfg.data.synthetic.get("pool") is None
    assert cfg.model.name == "dpdnet_small" and cfg.model.width <= 0.25
    assert 1e-4 <= cfg.optimizer.lr <= 2e-3 and cfg.scheduler_interval == "step"
    assert cfg.trainer.precision == fast_precision("cpu")
    assert "experiment=dpanet_dpdd" in cfg.hint
    # an experiment replaces the quick start: the papers' recipes keep their own settings
    recipe = compose_config("train", ["experiment=dpanet_dpdd", "data.root=/x"], tmp_path)
    assert recipe.trainer.max_steps == -1 and recipe.trainer.max_epochs == 150
    assert recipe.trainer.accelerator == "gpu" and recipe.hint is None


def test_fast_precision_is_fp32_off_the_cpu(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert fast_precision("gpu") == "32-true"
    assert fast_precision("cpu") in ("bf16-mixed", "32-true")


def test_fast_precision_follows_the_cpu_unless_dpdeblur_precision_forces_one(monkeypatch, tmp_path):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    on_this_cpu = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    assert fast_precision("cpu") == on_this_cpu
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert fast_precision("cpu") == on_this_cpu and fast_precision("gpu") == "32-true"
    for fp32 in ("32", " FP32 ", "32-true"):
        monkeypatch.setenv(PRECISION_ENV, fp32)
        assert fast_precision("cpu") == "32-true"
    # the quick start resolves it through ${dpdeblur_fast_precision:...}
    assert compose_config("train", [], tmp_path).trainer.precision == "32-true"
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert fast_precision("cpu") == "bf16-mixed" and fast_precision("gpu") == "bf16-mixed"
    monkeypatch.setenv(PRECISION_ENV, "fp64")
    with pytest.raises(ConfigError, match=r"^DPDEBLUR_PRECISION=fp64 is not a precision") as err:
        fast_precision("cpu")
    line = str(err.value)
    assert "\n" not in line and "auto, 32, fp32, 32-true, bf16, bf16-mixed" in line
    assert "DPDEBLUR_PRECISION=32" in line


def test_the_entry_points_import_neither_lightning_nor_torch():
    code = (
        "import sys, dpdeblur.cli.hydra_app, dpdeblur.training.preflight\n"
        "heavy = sorted(m for m in ('lightning', 'torch', 'wandb') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
