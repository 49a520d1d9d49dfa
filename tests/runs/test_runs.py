"""runs/: the one state-dict diff, the one checkpoint loader, the one run search and reader."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from dpdeblur.errors import CheckpointError, DpdeblurError
from dpdeblur.models import create_model
from dpdeblur.runs import releases
from dpdeblur.runs.checkpoints import describe, load_model, write_weights
from dpdeblur.runs.find import best_checkpoint, find_runs, last_checkpoint
from dpdeblur.runs.records import read_image_rows, read_run
from dpdeblur.runs.state_dict import (
    diff_state_dict,
    load_stage1_state_dict,
    load_strict,
)

SMALL = {"width": 0.0625}


# -- the diff and the strict loaders --------------------------------------------------------


def _toy() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


def test_diff_names_missing_unexpected_and_wrong_shape_keys():
    state = dict(_toy().state_dict())
    del state["1.bias"]
    state["0.weight"] = torch.zeros(4, 2)
    state["2.weight"] = torch.zeros(1)
    diff = diff_state_dict(_toy(), state)
    assert not diff.fits
    assert diff.missing == ["1.bias"] and diff.unexpected == ["2.weight"]
    assert diff.wrong_shape == [("0.weight", (4, 2), (3, 2))]
    assert diff.summary() == (
        "1 missing keys (1.bias); 1 unexpected keys (2.weight); "
        "1 wrong shape (0.weight (4, 2) vs (3, 2))"
    )
    assert diff_state_dict(_toy(), _toy().state_dict()).fits


def test_summary_names_the_first_keys_and_counts_the_rest():
    state = {f"extra{i}": torch.zeros(1) for i in range(5)}
    summary = diff_state_dict(nn.Identity(), state).summary()
    assert summary == "5 unexpected keys (extra0, extra1, extra2 and 2 more)"


def test_load_strict_loads_a_fit_and_refuses_a_misfit_in_one_line(tmp_path):
    source, target = _toy(), _toy()
    load_strict(target, source.state_dict())
    assert _same_weights(source, target)
    with pytest.raises(CheckpointError) as err:
        load_strict(target, {"0.weight": torch.zeros(3, 2)}, tmp_path / "x.pt")
    line = str(err.value)
    assert line.startswith(str(tmp_path / "x.pt")) and "\n" not in line
    assert "weights do not fit model 'Sequential': 3 missing keys" in line
    assert " -- " in line  # the fix follows


class _TwoStage(nn.Module):
    stage2_prefixes = ("extra.",)

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 2)
        self.extra = nn.Linear(2, 2)


def test_stage_one_weights_load_all_but_the_stage_two_blocks():
    torch.manual_seed(0)
    model = _TwoStage()
    extra_before = model.extra.weight.detach().clone()
    stage1 = {f"body.{k}": torch.full_like(v, 0.5) for k, v in model.body.state_dict().items()}
    load_stage1_state_dict(model, stage1)
    assert torch.equal(model.body.weight, torch.full((2, 2), 0.5))
    assert torch.equal(model.extra.weight, extra_before)
    with pytest.raises(CheckpointError, match=r"stage-1.*1 missing keys \(body\.bias\)"):
        load_stage1_state_dict(_TwoStage(), {"body.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(extra\.weight"):
        load_stage1_state_dict(_TwoStage(), {**stage1, "extra.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match="no second stage"):
        load_stage1_state_dict(_toy(), {})


# -- one loader for every kind of checkpoint ------------------------------------------------


@pytest.fixture(scope="module")
def small_dpdnet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("dpdnet", **SMALL).eval()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lightning_checkpoint_names_its_model(tmp_path, small_dpdnet):
    path = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in small_dpdnet.state_dict().items()},
            "hyper_parameters": {"model_config": {"name": "dpdnet", **SMALL}},
            "epoch": 3,
            "global_step": 7,
        },
        path,
    )
    model, info = load_model(path)
    assert _same_weights(model, small_dpdnet) and not model.training
    assert info == {
        "path": str(path),
        "kind": "lightning",
        "epoch": 3,
        "global_step": 7,
        "model_config": {"name": "dpdnet", **SMALL},
    }
    assert describe(info) == f"dpdnet(width=0.0625) from {path} (lightning)"
    with pytest.raises(CheckpointError, match="holds model 'dpdnet', not 'dpanet'"):
        load_model(path, "dpanet")
    with pytest.raises(CheckpointError, match=r"do not fit model 'dpdnet'.*wrong shape"):
        load_model(path, "dpdnet", {"width": 0.125})  # other arguments replace the stored


def test_weights_file_and_plain_state_dict(tmp_path, small_dpdnet):
    out = write_weights(tmp_path / "w" / "dpdnet.pt", small_dpdnet, SMALL, "test")
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "dpdeblur-weights" and payload["model"] == "dpdnet"
    model, info = load_model(out)
    assert _same_weights(model, small_dpdnet) and info["kind"] == "converted"

    plain = tmp_path / "plain.pt"
    torch.save(small_dpdnet.state_dict(), plain)
    with pytest.raises(CheckpointError, match="plain state dict does not name its model"):
        load_model(plain)
    model, info = load_model(plain, "dpdnet", SMALL)
    assert _same_weights(model, small_dpdnet) and info["kind"] == "state_dict"
    with pytest.raises(CheckpointError, match="do not fit model 'dpdnet'"):
        load_model(plain, "dpdnet")  # the default width: another shape

    model, info = load_model(small_dpdnet.state_dict(), "dpdnet", SMALL)  # already read
    assert info["path"] is None and "in memory" in describe(info)


def test_unreadable_and_unknown_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(broken)
    odd = tmp_path / "odd.pt"
    torch.save({"weights": 1, "epoch": 2}, odd)
    with pytest.raises(CheckpointError, match=r"unrecognised checkpoint layout \(keys: weights"):
        load_model(odd)


def test_released_files_are_detected_and_converted_by_their_format(monkeypatch, small_dpdnet):
    """A stand-in release format: keys prefixed ``net/``, detected by a marker key."""

    def convert(payload, model, path):
        return {k[len("net/") :]: v for k, v in payload["weights"].items()}

    fake = types.SimpleNamespace(
        NAME="fake-release",
        MODEL="dpdnet",
        detect=lambda payload: "fake_release" in payload,
        convert=convert,
    )
    monkeypatch.setattr(releases, "FORMATS", (fake,))
    payload = {
        "fake_release": True,
        "weights": {f"net/{k}": v for k, v in small_dpdnet.state_dict().items()},
    }
    model, info = load_model(payload, model_kwargs=SMALL)
    assert _same_weights(model, small_dpdnet)
    assert info["kind"] == "release" and info["release_format"] == "fake-release"
    with pytest.raises(CheckpointError, match=r"dpdnet's released checkpoint.*not a 'dpanet'"):
        load_model(payload, "dpanet")
    assert releases.release_models() == ["dpdnet"]


# -- finding and reading runs ---------------------------------------------------------------


def make_run(
    root: Path,
    name: str,
    config: dict,
    metrics: dict | None = None,
    mtime: float | None = None,
    checkpoints: tuple[str, ...] = (),
) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for ckpt in checkpoints:
        (run / "checkpoints" / ckpt).write_bytes(b"weights")
    if metrics is not None:
        metrics = {**metrics}
        if metrics.pop("best", False):
            metrics["best_checkpoint"] = str(run / "checkpoints" / "best.ckpt")
        (run / "metrics.json").write_text(json.dumps(metrics))
    if mtime is not None:
        for path in [run / "config.yaml", run / "metrics.json", *(run / "checkpoints").iterdir()]:
            if path.exists():
                os.utime(path, (mtime, mtime))
    return run


def test_find_runs_walks_below_the_roots_and_skips_checkpoint_folders(tmp_path):
    make_run(tmp_path / "sweep", "0", {"seed": 1}, {"status": "ok"})
    make_run(tmp_path / "sweep", "1", {"seed": 2})
    (tmp_path / "sweep" / "0" / "checkpoints" / "config.yaml").write_text("seed: 9\n")
    runs = find_runs([tmp_path, tmp_path / "sweep"])  # the same runs twice: counted once
    assert [(r.path.name, r.status, r.seed) for r in runs] == [
        ("0", "ok", 1),
        ("1", "incomplete", 2),
    ]
    with pytest.raises(DpdeblurError, match="no such directory"):
        find_runs([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DpdeblurError, match="no run directories here"):
        find_runs([tmp_path / "empty"])
    assert find_runs([tmp_path / "nowhere", tmp_path / "empty"], strict=False) == []


def test_a_broken_run_stops_a_listing_but_not_a_search(tmp_path):
    good = make_run(tmp_path, "good", {"experiment_name": "e"}, {"status": "ok", "best": True})
    (good / "checkpoints" / "best.ckpt").write_bytes(b"w")
    bad = make_run(tmp_path, "bad", {"experiment_name": "e"})
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(DpdeblurError, match=r"unreadable metrics\.json"):
        find_runs([tmp_path])
    assert best_checkpoint([tmp_path], experiment_name="e") == good / "checkpoints" / "best.ckpt"


def test_last_checkpoint_prefers_the_run_itself_then_the_newest_of_its_experiment(tmp_path):
    log = tmp_path / "train"
    old = make_run(log, "old", {"experiment_name": "a"}, mtime=1_000, checkpoints=("last.ckpt",))
    new = make_run(log, "new", {"experiment_name": "a"}, mtime=2_000, checkpoints=("last.ckpt",))
    make_run(log, "other", {"experiment_name": "b"}, mtime=3_000, checkpoints=("last.ckpt",))
    here = make_run(log, "here", {"experiment_name": "a"})
    assert last_checkpoint(here, [log], "a") == new / "checkpoints" / "last.ckpt"
    assert last_checkpoint(old, [log], "a") == old / "checkpoints" / "last.ckpt"
    assert last_checkpoint(here, [log], "c") is None


def test_best_checkpoint_is_the_newest_finished_match_with_its_file(tmp_path):
    train = {"task_name": "train", "row": "dpanet", "experiment_name": "x"}
    ok = {"status": "ok", "best": True}
    older = make_run(tmp_path, "a", train, ok, mtime=1_000, checkpoints=("best.ckpt",))
    make_run(tmp_path, "b", train, {"status": "failed", "best": True}, 3_000, ("best.ckpt",))
    make_run(tmp_path, "c", train, ok, mtime=4_000)  # its best checkpoint was deleted
    make_run(tmp_path, "d", {**train, "row": "other"}, ok, 5_000, ("best.ckpt",))
    newer = make_run(tmp_path, "e", train, ok, mtime=2_000, checkpoints=("best.ckpt",))
    assert best_checkpoint([tmp_path], row="dpanet", task_name="train") == (
        newer / "checkpoints" / "best.ckpt"
    )
    os.utime(older / "metrics.json", (9_000, 9_000))
    assert best_checkpoint([tmp_path], experiment_name="x", row="dpanet") == (
        older / "checkpoints" / "best.ckpt"
    )
    assert best_checkpoint([tmp_path], row="missing") is None
    assert best_checkpoint([tmp_path / "nowhere"], row="dpanet") is None


def test_init_from_best_names_the_experiment_when_none_finished(tmp_path):
    from dpdeblur.training.train import init_checkpoint

    with pytest.raises(CheckpointError, match="init_from=best:stage1: no finished run"):
        init_checkpoint("best:stage1", tmp_path)
    run = make_run(tmp_path, "s1", {"experiment_name": "stage1"}, {"status": "ok", "best": True})
    (run / "checkpoints" / "best.ckpt").write_bytes(b"w")
    assert init_checkpoint("best:stage1", tmp_path) == run / "checkpoints" / "best.ckpt"
    assert init_checkpoint("~/x.ckpt", tmp_path) == Path("~/x.ckpt").expanduser()


def test_a_run_record_reads_scores_model_and_per_image_rows(tmp_path):
    metrics = {
        "status": "ok",
        "run_name": "dpanet-seed1",
        "val": {"psnr": 25.0},
        "test": {"psnr": 24.5, "psnr_indoor": 26.0, "psnr_outdoor": 23.0, "ssim": 0.8},
        "params": 1234,
        "model": {"name": "dpanet", "width": 0.5},
    }
    run = make_run(tmp_path, "r", {"seed": 1, "data": {"dataset": "dpdd"}}, metrics)
    (run / "test_images.csv").write_text(
        "name,split,scene,psnr,input_psnr\na,test,indoor,25.5,20.0\nb,test,outdoor,,21.0\n"
    )
    record = read_run(run)
    assert record.label == "dpanet-seed1" and record.scored_split == "test"
    assert record.scene_means("test") == {"indoor": 26.0, "outdoor": 23.0}
    assert record.params == 1234 and record.model_config == {"name": "dpanet", "width": 0.5}
    assert record.get("data.dataset") == "dpdd" and record.get("test.ssim") == 0.8
    rows = record.image_rows("test")
    assert rows[0] == {
        "name": "a",
        "split": "test",
        "scene": "indoor",
        "psnr": 25.5,
        "input_psnr": 20.0,
    }
    assert rows[1]["name"] == "b" and rows[1]["psnr"] != rows[1]["psnr"]  # empty: nan
    with pytest.raises(DpdeblurError, match="per-image rows not found"):
        record.image_rows("val")
    (run / "val_images.csv").write_text("name,split,scene,ssim\n")
    with pytest.raises(DpdeblurError, match="no per-image rows"):
        read_image_rows(run / "val_images.csv")

    unscored = read_run(make_run(tmp_path, "u", {}, {"status": "failed", "val": {"psnr": None}}))
    assert unscored.scored_split is None and unscored.status == "failed"
    assert unscored.label == "u"  # no run name or experiment: the folder's name
