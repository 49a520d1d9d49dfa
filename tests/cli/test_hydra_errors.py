"""dpdeblur-train and dpdeblur-eval refuse mistakes in one line (issue 19): non-zero exit,
no traceback, one ``error:`` line whose fix is written as Hydra overrides."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

BIN = Path(sys.executable).parent
# small enough that a check passed by mistake would still finish fast
SMALL = [
    "model.width=0.0625",
    "trainer.max_steps=1",
    "data.num_workers=0",
    "data.crop_size=32",
    "data.synthetic.train_length=2",
    "data.synthetic.val_length=1",
    "data.synthetic.size=[32,32]",
    "test=false",
    "metrics.lpips=off",
]


def refused(tmp_path: Path, tool: str, args: list[str], hint: str) -> str:
    """Run ``tool args``; check the one-line refusal and that it holds ``hint``."""
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path / "outputs")}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [str(BIN / tool), *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    assert hint in errors[0], errors[0]
    assert not re.search(r"--(model|allow)", errors[0]), errors[0]  # no argparse flags
    return errors[0]


def test_an_unknown_group_option_names_the_closest(tmp_path):
    line = refused(
        tmp_path, "dpdeblur-train", ["model=dpanet_tnyi"], "did you mean model=dpanet_tiny?"
    )
    assert "no such option in the config group 'model'" in line


def test_an_unknown_key_names_the_closest(tmp_path):
    refused(tmp_path, "dpdeblur-train", ["data.crop_sise=64"], "did you mean data.crop_size=64?")


def test_an_added_key_nothing_reads_is_refused(tmp_path):
    line = refused(tmp_path, "dpdeblur-train", ["+seeed=1"], "did you mean seed?")
    assert "+seeed=1 adds a key 'seeed' that dpdeblur-train never reads" in line


def test_an_unparsable_override_is_named(tmp_path):
    refused(tmp_path, "dpdeblur-train", ["model.width=[1"], "model.width=[1: not a valid override")


def test_eval_without_a_checkpoint(tmp_path):
    refused(tmp_path, "dpdeblur-eval", ["data=synthetic"], "pass ckpt=/path/to/best.ckpt")


def test_a_data_root_without_data_dpdd(tmp_path):
    refused(
        tmp_path, "dpdeblur-train", ["data.root=/data/dpdd"], "pass data=dpdd data.root=/data/dpdd"
    )


def test_a_crop_larger_than_the_synthetic_scenes(tmp_path):
    line = refused(
        tmp_path, "dpdeblur-train", ["data.crop_size=512"], "set data.crop_size=128 or less"
    )
    assert "crop 512x512 is larger than the synthetic training scenes 128x128" in line


def test_a_crop_larger_than_the_dataset_images(tmp_path, make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1, "test": 1}, size=(24, 40))
    args = ["data=dpdd", f"data.root={root}", *SMALL]
    line = refused(tmp_path, "dpdeblur-train", args, "set data.crop_size=24 or less")
    assert "crop 32x32 is larger than the training images 24x40" in line


def test_8bit_data_says_the_hydra_key(tmp_path, make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1, "test": 1}, size=(40, 40), bits=8)
    args = ["data=dpdd", f"data.root={root}", *SMALL]
    line = refused(tmp_path, "dpdeblur-train", args, "data.allow_8bit=true")
    assert "--allow-8bit" not in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_trainer_gpu_without_a_gpu(tmp_path):
    refused(tmp_path, "dpdeblur-train", ["trainer=gpu"], "use trainer=cpu")


@pytest.mark.skipif(
    bool(importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")),
    reason="tensorboard is installed",
)
def test_a_logger_whose_package_is_missing(tmp_path):
    line = refused(tmp_path, "dpdeblur-train", ["logger=tensorboard"], "or use logger=csv")
    assert "needs the tensorboard package" in line


def fake_run(outputs: Path, model: dict) -> Path:
    """A finished quickstart run whose last.ckpt is a checkpoint of ``model``."""
    run = outputs / "train" / "runs" / "earlier"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"experiment_name": "quickstart"}))
    last = run / "checkpoints" / "last.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": {"model_config": model}, "global_step": 4},
        last,
    )
    return last


def test_resuming_a_checkpoint_of_another_model(tmp_path):
    fake_run(tmp_path / "outputs", {"name": "dpanet_tiny", "width": 0.125})
    line = refused(
        tmp_path,
        "dpdeblur-train",
        ["ckpt_path=last", *SMALL],
        "pass model=dpanet_tiny model.width=0.125",
    )
    assert "this checkpoint is a dpanet_tiny(width=0.125) checkpoint" in line
    assert line.endswith("or another ckpt_path")


def test_eval_with_another_model_than_the_checkpoints(tmp_path):
    last = fake_run(tmp_path / "outputs", {"name": "dpanet_tiny", "width": 0.25})
    args = [f"ckpt={last}", "+model=k3dn_tiny", "data=synthetic"]
    line = refused(tmp_path, "dpdeblur-eval", args, "pass +model=dpanet_tiny or another ckpt")
    assert "this checkpoint is a dpanet_tiny(width=0.25) checkpoint, not a k3dn_tiny" in line


def test_a_signal_stop_is_one_line_and_exits_128_plus_the_signal(capsys):
    import signal

    from dpdeblur.cli.hydra_app import fail
    from dpdeblur.training.guard import TrainingStoppedError

    stop = TrainingStoppedError(
        "training stopped by SIGTERM at step 6", signal.SIGTERM, None, "resume with ckpt_path=last"
    )
    with pytest.raises(SystemExit) as exit_:
        fail(stop, "train")
    assert exit_.value.code == 143
    assert capsys.readouterr().err == (
        "stopped: training stopped by SIGTERM at step 6 -- resume with ckpt_path=last\n"
    )
