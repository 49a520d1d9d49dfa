"""The training layer's checks and re-wordings, without running a task (issue 19)."""

from __future__ import annotations

import pytest
import torch

from dpdeblur.errors import CheckpointError, ConfigError, DataError
from dpdeblur.training.config import compose_config
from dpdeblur.training.config_errors import hydra_hint
from dpdeblur.training.preflight import check_config, missing_keys
from dpdeblur.training.setup import (
    check_checkpoint_model,
    check_model_arguments,
    model_overrides,
    readable_data_errors,
    same_model,
)


def test_argparse_hints_become_overrides():
    assert (
        hydra_hint("pass --allow-8bit to accept them") == "pass data.allow_8bit=true to accept them"
    )
    assert hydra_hint("drop --model or pass --model dpanet") == (
        "drop the model override or pass model=dpanet"
    )
    assert hydra_hint("pass --model NAME (and --model-arg K=V)", "+model=") == (
        "pass +model=NAME (and +model.K=V)"
    )


def test_a_loader_workers_error_keeps_only_its_own_line():
    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1, in f\ndpdeblur.errors.DataError: /d/a.png: 8-bit -- '
        "pass --allow-8bit to accept them"
    )
    with pytest.raises(DataError) as err, readable_data_errors():
        raise wrapped
    assert err.value.one_line() == "/d/a.png: 8-bit -- pass data.allow_8bit=true to accept them"
    crop = ValueError(
        "Caught ValueError ...\nValueError: IMG_1: crop 512x512 is larger than the image 128x96"
    )
    with pytest.raises(ConfigError, match=r"set data.crop_size=96 or less"), readable_data_errors():
        raise crop


def test_model_arguments_are_checked_against_the_constructor():
    check_model_arguments({"name": "dpdnet_small", "width": 0.25, "sharp_gate": True})
    with pytest.raises(
        ConfigError, match=r"no argument 'sharp_gaet'.*did you mean model.sharp_gate"
    ):
        check_model_arguments({"name": "dpdnet_small", "sharp_gaet": True})


def test_a_checkpoint_of_another_model_names_its_overrides(tmp_path):
    path = tmp_path / "last.ckpt"
    stored = {"name": "dpdnet_small", "width": 0.125, "sharp_gate": True, "cost_shifts": 4}
    torch.save({"hyper_parameters": {"model_config": stored}, "global_step": 7, "epoch": 1}, path)
    assert check_checkpoint_model(path, dict(stored)) == {
        "path": str(path),
        "global_step": 7,
        "epoch": 1,
    }
    with pytest.raises(CheckpointError, match=r"pass model=dpdnet_small model.width=0.125 or"):
        check_checkpoint_model(path, {**stored, "width": 0.25})
    assert model_overrides({"name": "dpanet_tiny", "width": 0.25}) == "model=dpanet_tiny"
    assert model_overrides({"name": "dpdnet", "width": 1.0, "residual": True}) == (
        "model=dpdnet +model.residual=true"
    )
    # an argument left out counts as its default
    assert same_model({"name": "dpdnet"}, {"name": "dpdnet", "width": 1.0})
    assert not same_model({"name": "dpdnet"}, {"name": "dpdnet", "width": 0.5})


def test_preflight_reads_the_config_without_resolving_it(tmp_path):
    cfg = compose_config("eval", ["data=synthetic"], tmp_path)
    assert missing_keys(cfg) == ["ckpt"]
    with pytest.raises(ConfigError, match="pass ckpt="):
        check_config(cfg, "eval")
    check_config(compose_config("train", [], tmp_path), "train")
