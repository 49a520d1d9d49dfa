"""Every config composes, and what it names exists (STYLE.md: tests in layers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dpdeblur.models import is_model
from dpdeblur.training.config import config_dir, register_resolvers

CONF = config_dir()
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose_train(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_config_dir_is_found():
    assert (CONF / "train.yaml").is_file() and (CONF / "eval.yaml").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_its_parts_instantiate(experiment, tmp_path: Path):
    cfg = compose_train([f"experiment={experiment}", f"data.root={tmp_path}"])
    assert cfg.experiment_name == cfg.get("row", experiment)
    assert is_model(cfg.model.name), cfg.model.name
    loss = instantiate(cfg.loss)
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = instantiate(cfg.optimizer)(params)
    if cfg.get("scheduler"):
        instantiate(cfg.scheduler)(optimizer)
    assert loss.weights


@pytest.mark.parametrize("model", MODELS)
def test_model_configs_name_registered_models(model):
    cfg = compose_train([f"model={model}"])
    assert is_model(cfg.model.name)


def test_dpanet_recipe_matches_the_release():
    cfg = compose_train(["experiment=dpanet_dpdd", "data.root=/x"])
    assert cfg.optimizer.lr == 2e-5 and list(cfg.scheduler.milestones) == [60, 120]
    assert cfg.scheduler.gamma == 0.5 and cfg.trainer.max_epochs == 150
    assert (
        cfg.data.batch_size == 4
        and cfg.data.crop_size == 512
        and list(cfg.data.resize) == [512, 638]
    )
    assert cfg.data.hflip_swap == 0.0 and "charbonnier" in cfg.loss.terms
    stage1 = compose_train(["experiment=dpanet_dpdd_2stage", "data.root=/x"])
    assert dict(stage1.loss.terms) == {"mse": 1.0}
    stage2 = compose_train(["experiment=dpanet_dpdd_2stage_ft", "data.root=/x"])
    assert stage2.init_from == "best:dpanet_dpdd_2stage" and "charbonnier" in stage2.loss.terms


def test_k3dn_loss_weight_is_sweepable():
    cfg = compose_train(["experiment=k3dn_dpdd", "data.root=/x", "loss.terms.reblur=0.05"])
    assert instantiate(cfg.loss).weights == {"charbonnier": 1.0, "reblur": 0.05}


@pytest.mark.parametrize(
    "group,names", [("trainer", ["cpu", "gpu", "ddp"]), ("logger", ["csv", "wandb", "tensorboard"])]
)
def test_groups_have_their_options(group, names):
    for name in names:
        assert (CONF / group / f"{name}.yaml").is_file()
