"""Training and evaluation end to end on tiny data (issue: training and evaluation)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.errors import CheckpointError, ConfigError, DataError
from dpdeblur.models import create_model
from dpdeblur.training.config import compose_config
from dpdeblur.training.guard import TrainingDivergedError

BIN = Path(sys.executable).parent
TINY = [
    "model=dpanet_tiny",
    "model.width=0.125",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "data.batch_size=3",
    "data.num_workers=0",
    "data.crop_size=32",
    "metrics.lpips=off",
    "metrics.num_panels=1",
]


@pytest.fixture(scope="module")
def synth_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "dpdd"
    write_synthetic_dpdd(root, n=7, size=(32, 40), seed=1)  # 5 train, 1 val, 1 test
    return root


def make_cfg(
    tmp_path: Path, overrides: list[str], config_name: str = "train", log_dir: Path | None = None
):
    return compose_config(config_name, overrides, tmp_path, log_dir)


def read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cli_trains_two_steps_and_tests_on_a_dpdd_tree(synth_tree, tmp_path):
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path)}
    args = [
        str(BIN / "dpdeblur-train"),
        "data=dpdd",
        f"data.root={synth_tree}",
        "trainer=cpu",
        "logger=csv",
        *TINY,
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics_path,) = tmp_path.glob("train/runs/*/metrics.json")
    metrics = json.loads(metrics_path.read_text())
    assert metrics["status"] == "ok" and metrics["global_step"] == 2
    assert metrics["protocol"]["protocol"] == "16bit"
    assert metrics["test"]["images"] == 1 and math.isfinite(metrics["test"]["psnr"])
    run = metrics_path.parent
    rows = read_rows(run / "test_images.csv")
    assert len(rows) == 1 and rows[0]["name"].startswith("SYNTE") and rows[0]["split"] == "test"
    assert float(rows[0]["psnr"]) == pytest.approx(metrics["test"]["psnr"])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert metrics["best_checkpoint"] and Path(metrics["best_checkpoint"]).is_file()
    assert list((run / "panels").glob("val_epoch*.png"))
    assert (run / "csv" / "metrics.csv").is_file()

    # dpdeblur-eval scores the checkpoint the same way.
    args = [
        str(BIN / "dpdeblur-eval"),
        f"ckpt={metrics['best_checkpoint']}",
        "data=dpdd",
        f"data.root={synth_tree}",
        "metrics.lpips=off",
        "data.num_workers=0",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_metrics,) = tmp_path.glob("eval/runs/*/metrics.json")
    scored = json.loads(eval_metrics.read_text())
    assert scored["test"]["psnr"] == pytest.approx(metrics["test"]["psnr"], abs=1e-6)


def test_resume_from_last_continues_the_saved_step(synth_tree, tmp_path):
    from dpdeblur.training.train import train

    base = [
        "data=dpdd",
        f"data.root={synth_tree}",
        "test=false",
        "trainer.max_steps=-1",  # counted in epochs (the quick start's budget is in steps)
        *TINY,
    ]  # 5 images, batch 3: 2 steps/epoch
    runs = tmp_path / "train" / "runs"  # the layout of conf/hydra/default.yaml
    first = train(make_cfg(runs / "a", base, log_dir=tmp_path))
    assert first["global_step"] == 2
    last = runs / "a" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 2 and saved["optimizer_states"][0]["state"]
    resumed = train(
        make_cfg(runs / "b", [*base, "trainer.max_epochs=2", "ckpt_path=last"], log_dir=tmp_path)
    )
    assert resumed["global_step"] == 4 and resumed["epochs"] == 2
    again = torch.load(
        runs / "b" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    # Adam's step counter went on from 2, not from 0: the optimiser state was restored.
    step = next(iter(again["optimizer_states"][0]["state"].values()))["step"]
    assert int(step) == 4
    assert again["lr_schedulers"][0]["last_epoch"] >= saved["lr_schedulers"][0]["last_epoch"]


def test_weight_averaging_validates_saves_and_tests_the_averaged_weights(synth_tree, tmp_path):
    from dpdeblur.runs.checkpoints import load_model
    from dpdeblur.training.train import train

    ema = [
        "+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging",
        "+callbacks.ema.decay=0.5",
        "+callbacks.ema.update_starting_at_step=0",
    ]
    overrides = ["data=dpdd", f"data.root={synth_tree}", *TINY, *ema]
    result = train(make_cfg(tmp_path / "train" / "runs" / "ema", overrides, log_dir=tmp_path))
    assert result["status"] == "ok" and result["test"]["images"] == 1
    saved = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=False)
    averaged = {k: v for k, v in saved["state_dict"].items() if k.startswith("model.")}
    raw = saved["current_model_state"]
    # The checkpoint's weights are the average, not the last step's (which it keeps aside).
    assert any(not torch.equal(v, raw[k]) for k, v in averaged.items() if v.is_floating_point())
    model, _ = load_model(result["last_checkpoint"])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, averaged["model." + name])
    # The run's test scores are those of the weights dpdeblur-eval loads (the average).
    from dpdeblur.training.evaluate import evaluate

    scored = evaluate(
        make_cfg(
            tmp_path / "eval",
            [
                f"ckpt={result['best_checkpoint']}",
                "data=dpdd",
                f"data.root={synth_tree}",
                "data.num_workers=0",
                "metrics.lpips=off",
            ],
            "eval",
        )
    )
    # (to float rounding: the run scores NHWC weights, channels_last=true in the quick start)
    assert scored["test"]["psnr"] == pytest.approx(result["test"]["psnr"], abs=1e-6)
    # flip_ensemble=true scores the four-flip average instead, and says so in metrics.json
    ensembled = evaluate(
        make_cfg(
            tmp_path / "eval_flips",
            [
                f"ckpt={result['best_checkpoint']}",
                "data=dpdd",
                f"data.root={synth_tree}",
                "data.num_workers=0",
                "metrics.lpips=off",
                "flip_ensemble=true",
            ],
            "eval",
        )
    )
    assert ensembled["flip_ensemble"] is True and scored["flip_ensemble"] is False
    assert ensembled["test"]["psnr"] != pytest.approx(scored["test"]["psnr"], abs=1e-9)


def test_wrong_data_root_stops_before_training(tmp_path):
    from dpdeblur.training.train import train

    with pytest.raises(DataError, match=r"not a DPDD dataset|does not exist"):
        train(make_cfg(tmp_path, ["data=dpdd", f"data.root={tmp_path / 'nothing'}", *TINY]))
    assert not (tmp_path / "checkpoints").exists()


def test_broken_dataset_fails_its_check_before_training(synth_tree, tmp_path):
    import shutil

    from dpdeblur.training.train import train

    broken = tmp_path / "broken"
    shutil.copytree(synth_tree, broken)
    next((broken / "train_r" / "source").iterdir()).unlink()
    with pytest.raises(DataError, match=r"dataset check failed.*different file counts"):
        train(make_cfg(tmp_path / "run", ["data=dpdd", f"data.root={broken}", *TINY]))


def test_unknown_model_lists_the_known_ones(tmp_path):
    from dpdeblur.training.train import train

    with pytest.raises(ConfigError, match=r"unknown model 'resnet'.*dpanet.*k3dn_tiny"):
        train(make_cfg(tmp_path, [*TINY, "model.name=resnet"]))


def test_non_finite_loss_stops_with_a_clear_message_and_a_good_checkpoint(tmp_path, monkeypatch):
    from dpdeblur.training import losses
    from dpdeblur.training.train import train

    calls = {"n": 0}
    original = losses.CompositeLoss.forward

    def poisoned(self, output, batch, skip_unavailable=False):
        total, terms = original(self, output, batch, skip_unavailable)
        calls["n"] += 1
        if calls["n"] >= 2:
            total = total * float("nan")
        return total, terms

    monkeypatch.setattr(losses.CompositeLoss, "forward", poisoned)
    overrides = [
        *TINY,
        "trainer.max_epochs=2",
        "data.synthetic.train_length=12",
        "data.synthetic.size=[32,32]",
    ]
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss .* at step 1") as err:
        train(make_cfg(tmp_path, overrides))
    assert "last.ckpt" in str(err.value) and "3 steps in a row" in str(err.value)
    saved = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    # One good step, then three non-finite ones (the default callbacks.nonfinite.max_consecutive),
    # each skipped: the optimiser updated the weights once, and the run stopped after step 4.
    assert saved["global_step"] == 4 and calls["n"] == 4
    (state,) = saved["optimizer_states"]
    assert {int(s["step"]) for s in state["state"].values()} == {1}
    assert all(
        torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point()
    )


def test_eval_refuses_a_checkpoint_of_another_model(tmp_path):
    from dpdeblur.models import create_model
    from dpdeblur.training.evaluate import evaluate

    path = tmp_path / "other.pt"
    torch.save(create_model("dpanet", width=0.125).state_dict(), path)
    cfg = make_cfg(
        tmp_path,
        [f"ckpt={path}", "data=synthetic", "+model.name=k3dn_tiny", "metrics.lpips=off"],
        "eval",
    )
    with pytest.raises(CheckpointError, match="do not fit model 'k3dn_tiny'"):
        evaluate(cfg)
    path.write_bytes(b"not a checkpoint")
    cfg = make_cfg(tmp_path, [f"ckpt={path}", "data=synthetic", "metrics.lpips=off"], "eval")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        evaluate(cfg)


def test_wandb_runs_offline_without_network(tmp_path, monkeypatch, caplog):
    from dpdeblur.training.train import train

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [
        *TINY,
        "logger=wandb",
        "test=false",
        "data.synthetic.train_length=4",
        "data.synthetic.size=[32,32]",
    ]
    with caplog.at_level("WARNING", logger="dpdeblur"):
        result = train(make_cfg(tmp_path, overrides))
    # said once, in the dpdeblur log (not as a warning from Hydra's instantiate)
    assert any("wandb sync" in r.getMessage() and r.name == "dpdeblur" for r in caplog.records)
    assert result["status"] == "ok"
    assert list((tmp_path / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_a_failing_multirun_job_does_not_stop_the_sweep(tmp_path):
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path)}
    tiny = [o for o in TINY if not o.startswith("model.width")]
    args = [
        str(BIN / "dpdeblur-train"),
        "-m",
        "model.name=no_such_model,dpanet",
        "model.width=0.125",
        "data.synthetic.train_length=3",
        "data.synthetic.val_length=1",
        "data.synthetic.size=[32,32]",
        "test=false",
        *tiny,
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = tmp_path.glob("train/multiruns/*")
    # each job's folder is named by its overrides (tests/training/test_run_names.py)
    failed = json.loads((sweep / "0_name-no_such_model" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "unknown model 'no_such_model'" in failed["error"]
    done = json.loads((sweep / "1_name-dpanet" / "metrics.json").read_text())
    assert done["status"] == "ok" and done["model"]["name"] == "dpanet"


def tiny_dpdnet_weights(path):
    """A dpdeblur-weights file of a 1/16-width DPDNet (seed 0) at ``path``."""
    torch.manual_seed(0)
    torch.save(
        {"format": "dpdeblur-weights", "version": 1, "model": "dpdnet"}
        | {"model_kwargs": {"width": 0.0625}}
        | {"state_dict": create_model("dpdnet", width=0.0625).state_dict()},
        path,
    )
    return path


def test_eval_release_protocol_is_recorded_and_an_unknown_one_refused(tmp_path, make_dpdd_tree):
    from dpdeblur.training.evaluate import evaluate

    root, _ = make_dpdd_tree(counts={"test": 2, "val": 1}, size=(24, 40))
    weights = tiny_dpdnet_weights(tmp_path / "w.pt")
    common = [f"ckpt={weights}", "data=dpdd", f"data.root={root}", "data.num_workers=0"]
    common += ["metrics.lpips=off"]
    plain = evaluate(make_cfg(tmp_path / "plain", common, "eval"))
    resized = evaluate(make_cfg(tmp_path / "k3dn", [*common, "release_protocol=k3dn"], "eval"))
    assert plain["release_protocol"] is None and resized["release_protocol"] == "k3dn"
    assert resized["test"]["psnr"] != pytest.approx(plain["test"]["psnr"], abs=1e-6)
    with pytest.raises(
        ConfigError, match=r"unknown release protocol 'dpdnet'.*release_protocol=k3dn"
    ):
        evaluate(make_cfg(tmp_path / "bad", [*common, "release_protocol=dpdnet"], "eval"))


def test_eval_input_bits_and_the_dpanet_protocol_are_recorded(tmp_path, make_dpdd_tree):
    from dpdeblur.training.evaluate import evaluate

    root, _ = make_dpdd_tree(counts={"test": 2, "val": 1}, size=(24, 40))
    weights = tiny_dpdnet_weights(tmp_path / "w.pt")
    common = [f"ckpt={weights}", "data=dpdd", f"data.root={root}", "data.num_workers=0"]
    common += ["metrics.lpips=off", "+model=auto"]  # +model=auto: the file names its model
    plain = evaluate(make_cfg(tmp_path / "plain", common, "eval"))
    eight = evaluate(make_cfg(tmp_path / "8bit", [*common, "input_bits=8"], "eval"))
    release = evaluate(make_cfg(tmp_path / "dpanet", [*common, "release_protocol=dpanet"], "eval"))
    assert plain["input_bits"] == 16 and eight["input_bits"] == 8
    assert eight["test"]["psnr"] != pytest.approx(plain["test"]["psnr"], abs=1e-7)
    # DPANet's protocol: 8-bit views in, scored uint8-truncated against the 8-bit target
    assert release["release_protocol"] == "dpanet" and "8bit_trunc" in str(release["protocol"])
    assert "8bit_trunc" not in str(eight["protocol"])
    with pytest.raises(ConfigError, match="input_bits=8 or 16"):
        evaluate(make_cfg(tmp_path / "bad", [*common, "input_bits=12"], "eval"))
