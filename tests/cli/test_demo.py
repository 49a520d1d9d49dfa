"""`dpdeblur-demo`'s configuration, precision switch and overrides (docs/demo.md)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from dpdeblur.cli.demo import (
    PRETRAIN_SEED,
    choose_precision,
    other_family,
    other_kernel,
    train_overrides,
)
from dpdeblur.errors import ConfigError
from dpdeblur.hardware import cpu_has_native_bf16
from dpdeblur.training.config import compose_config


def test_demo_configuration_composes_with_a_step_budget_and_one_cycle(tmp_path):
    cfg = compose_config("train", ["experiment=demo"], tmp_path)
    synthetic = cfg.data.synthetic
    assert synthetic.scenes == "photo" and synthetic.kernel == "soft"
    assert other_family(synthetic.scenes) == "layers" and other_kernel(synthetic.kernel) == "hard"
    assert cfg.trainer.max_steps > 0 and cfg.trainer.max_epochs == -1  # steps, not time
    assert cfg.trainer.max_time  # a cap only
    # The learning rate rises to optimizer.lr and anneals within the step budget.
    layer = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([layer], lr=cfg.optimizer.lr)
    scheduler = instantiate(cfg.scheduler)(optimizer)
    rates = []
    for _ in range(cfg.trainer.max_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) == pytest.approx(cfg.optimizer.lr) and rates[-1] < rates[0] < max(rates)


def test_demo_overrides_fit_the_tree_the_cpu_and_the_weights(tmp_path):
    overrides = train_overrides(
        (48, 64), 0, 3, 4, "32-true", 12, 1.5, tmp_path / "t.json", tmp_path / "w.pt"
    )
    assert "trainer.precision=32-true" in overrides and "trainer.max_steps=12" in overrides
    assert "data.synthetic.pool.scenes=4" in overrides and "data.crop_size=48" in overrides
    assert "trainer.max_time=00:00:01:30" in overrides
    assert f"init_from={tmp_path / 'w.pt'}" in overrides
    cfg = compose_config("train", ["experiment=demo", *overrides], tmp_path)
    assert cfg.scheduler.total_steps == 12 and cfg.callbacks.step_timer.path.endswith("t.json")
    assert cfg.data.synthetic.seed != PRETRAIN_SEED  # pre-training never sees the demo's scenes


def test_precision_follows_the_cpu_unless_forced(monkeypatch):
    assert cpu_has_native_bf16({"avx512f", "amx_bf16"}) and cpu_has_native_bf16({"bf16", "asimd"})
    assert not cpu_has_native_bf16({"avx2", "avx512f", "avx512bw"})  # oneDNN would emulate it
    monkeypatch.delenv("DPDEBLUR_PRECISION", raising=False)
    assert choose_precision(None, native_bf16=True)[0] == "bf16-mixed"
    assert choose_precision(None, native_bf16=False)[0] == "32-true"
    assert choose_precision("32", native_bf16=True) == ("32-true", "fp32 (forced)")
    assert "emulated" in choose_precision("bf16", native_bf16=False)[1]
    monkeypatch.setenv("DPDEBLUR_PRECISION", "32")
    assert choose_precision(None, native_bf16=True)[0] == "32-true"
    assert choose_precision("auto", native_bf16=True)[0] == "bf16-mixed"  # the flag wins
    monkeypatch.setenv("DPDEBLUR_PRECISION", "fp64")
    with pytest.raises(ConfigError, match="DPDEBLUR_PRECISION=32"):
        choose_precision(None, native_bf16=True)
