"""Every config composes, and what it names exists."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.models import is_model, model_info
from dpdeblur.research.tables import load_table
from dpdeblur.training.config import (
    TABLES_ENV,
    compose_config,
    config_dir,
    register_resolvers,
    table_row_runs,
    tables_dir,
)

CONF = config_dir()
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# conf/model/auto.yaml is not a model: dpdeblur-eval +model=auto, "the checkpoint's own"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem != "auto")
ROWS = sorted(p.stem for p in (CONF / "row").glob("*.yaml"))
TABLES = sorted(p.stem for p in tables_dir().glob("*.yaml"))


def compose_train(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_config_dir_is_found():
    assert (CONF / "train.yaml").is_file() and (CONF / "eval.yaml").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_its_parts_instantiate(experiment, tmp_path: Path):
    cfg = compose_train([f"experiment={experiment}", f"data.root={tmp_path}"])
    # a table sweep names its runs (and resumes them) per row; other experiments by name
    assert cfg.experiment_name == (cfg.row if cfg.get("table") else experiment)
    assert is_model(cfg.model.name), cfg.model.name
    loss = instantiate(cfg.loss)
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = instantiate(cfg.optimizer)(params)
    if cfg.get("scheduler"):
        instantiate(cfg.scheduler)(optimizer)
    assert loss.weights


@pytest.mark.parametrize("model", MODELS)
def test_model_configs_hold_a_registry_name_and_constructor_arguments(model):
    """A model config is its registry name plus constructor arguments of that model: the
    size argument (what command lines override) and what differs from the defaults."""
    config = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model}.yaml"))
    name = config.pop("name")
    assert is_model(name), name
    info = model_info(name)
    signature = inspect.signature(info.architecture).parameters
    assert set(config) <= set(signature), set(config) - set(signature)
    for key, value in config.items():
        if key != info.size_argument:
            assert value != signature[key].default, f"{model}: {key} restates a default"
    assert compose_train([f"model={model}"]).model.name == name


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


# -- table rows: stated once, in experiments/tables/<table>.yaml ---------------------------


def rows_of_tables() -> dict[str, list[str]]:
    """The conf/row files each table names: its sweep's rows, or the row it scores."""
    named = {}
    for table in TABLES:
        spec = load_table(table)
        named[table] = [spec.recipe["train_row"]] if spec.kind == "eval" else table_row_runs(table)
    return named


def rows_of_recipes() -> dict[str, str]:
    """Experiment files that compose a row (``/row: <row>`` in their defaults)."""
    composed = {}
    for experiment in EXPERIMENTS:
        raw = yaml.safe_load((CONF / "experiment" / f"{experiment}.yaml").read_text())
        for entry in raw.get("defaults") or []:
            if isinstance(entry, dict) and "/row" in entry:
                composed[experiment] = entry["/row"]
    return composed


def test_every_row_a_table_names_exists_and_every_row_file_is_used():
    named = rows_of_tables()
    for table, rows in named.items():
        assert rows, table
        for row in rows:
            assert (CONF / "row" / f"{row}.yaml").is_file(), (table, row)
    used = {row for rows in named.values() for row in rows} | set(rows_of_recipes().values())
    assert sorted(used) == ROWS, f"row files no table or recipe uses: {set(ROWS) - used}"


def test_table_row_runs_reads_runs_in_order_once_and_skips_unimplemented(tmp_path, monkeypatch):
    (tmp_path / "toy.yaml").write_text(
        yaml.safe_dump(
            {
                "rows": [
                    {"id": "b"},
                    {"id": "theirs", "run": None},
                    {"id": "a_8bit", "run": "a"},
                    {"id": "a"},
                    {"id": "c"},
                ]
            }
        )
    )
    monkeypatch.setenv(TABLES_ENV, str(tmp_path))
    assert table_row_runs("toy") == ["b", "a", "c"]
    register_resolvers()
    assert OmegaConf.create({"t": "toy", "r": "${dpdeblur_table_rows:${t}}"}).r == "b,a,c"
    with pytest.raises(ConfigError, match="unreadable table file"):
        table_row_runs("missing")


def test_table_row_runs_agree_with_the_table_loader():
    for table in TABLES:
        spec = load_table(table)
        if spec.kind == "train":
            assert table_row_runs(table) == [r.run for r in spec.rows if r.implemented]


def recipe(overrides: list[str], run_dir: Path) -> dict:
    """What makes a run of a row: model, loss, optimiser, schedule, data, epochs."""
    cfg = compose_config("train", [*overrides, "data.root=/x"], run_dir)
    cfg = OmegaConf.to_container(cfg, resolve=True)
    keys = ("model", "loss", "optimizer", "scheduler", "data")
    return {**{k: cfg[k] for k in keys}, "max_epochs": cfg["trainer"]["max_epochs"]}


def test_recipe_experiments_compose_their_row():
    composed = rows_of_recipes()
    assert composed["dpanet_dpdd"] == "dpanet" and composed["k3dn_dpdd"] == "k3dn_no_srp"
    for experiment in ("dpanet_dpdd", "k3dn_dpdd"):
        raw = yaml.safe_load((CONF / "experiment" / f"{experiment}.yaml").read_text())
        # the recipe is the row's: the experiment states only where it runs and its name
        assert set(raw) == {"defaults", "experiment_name", "tags"}, experiment


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_run_that_names_a_row_has_that_rows_recipe(experiment, tmp_path):
    cfg = compose_train([f"experiment={experiment}", "data.root=/x"])
    if cfg.get("row") is None:
        return  # not a table row (e.g. a second stage): tables do not count it
    # a row on its own, without the quick start (the default experiment)
    row = recipe([f"+row={cfg.row}", "data=dpdd", "~experiment"], tmp_path)
    assert recipe([f"experiment={experiment}"], tmp_path) == row


SWEEP_APP = """
import json, sys
import hydra
from dpdeblur.training.config import config_dir, register_resolvers

register_resolvers()
out = sys.argv.pop(1)

@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def record(cfg):
    with open(out, "a") as f:
        f.write(json.dumps([cfg.row, cfg.seed, cfg.model.name, cfg.experiment_name]) + "\\n")

record()
"""


def launch(tmp_path: Path, args: list[str]) -> list[list]:
    """The jobs Hydra launches for ``args`` with the real configs (each job only records)."""
    app, out = tmp_path / "record.py", tmp_path / f"jobs{len(list(tmp_path.iterdir()))}.jsonl"
    app.write_text(SWEEP_APP)
    subprocess.run(
        [sys.executable, str(app), str(out), *args, "data.root=/x", "hydra/job_logging=disabled",
         f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_table_sweep_launches_the_rows_of_its_table_file(tmp_path):
    jobs = launch(tmp_path, ["-m", "experiment=dpanet_table4"])
    rows = [r.run for r in load_table("dpanet_table4").rows]
    assert rows == table_row_runs("dpanet_table4") and len(rows) == 6
    assert jobs == [[row, 0, row, row] for row in rows]
    # a command-line row list still wins, and a single run takes one row
    jobs = launch(tmp_path, ["-m", "experiment=dpanet_table4", "row=dpanet_no_dam", "seed=0,1"])
    assert jobs == [["dpanet_no_dam", seed, "dpanet_no_dam", "dpanet_no_dam"] for seed in (0, 1)]
    jobs = launch(tmp_path, ["experiment=k3dn_ablation", "row=k3dn_no_sym"])
    assert jobs == [["k3dn_no_sym", 0, "k3dn_no_sym", "k3dn_no_sym"]]
