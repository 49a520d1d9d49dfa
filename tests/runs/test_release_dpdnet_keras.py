"""Loading DPDNet's released Keras model (``defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5``).

The files are written here with h5py in the layout Keras 2.2.4 gives them (``model.save``
and ``save_weights``: layer groups, ``layer_names`` / ``weight_names`` attributes, weights
nested under ``<layer>/<layer>/kernel:0``), from the release's layer table
(tests/fixtures/dpdnet_keras_layers.tsv). Their weights are the numeric fingerprint's:
conv k's kernel is ``RandomState(k).uniform(-1, 1)`` times sqrt(6 / (H W in)), its bias
``RandomState(1000 + k).uniform(-0.1, 0.1)``, all distinct. The fingerprint's reference
output (tests/fixtures/dpdnet_keras_output_f64_nhwc_bgr.npy: 1 x 64 x 64 x 3, B, G, R,
float64) is the Keras graph computed in float64 on the input
``0.5 + 0.4 sin(0.37 h + 0.23 w + 0.9 c)``, channels [L_B, L_G, L_R, R_B, R_G, R_R].
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dpdeblur.cli.convert import main as convert_main
from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model, model_info
from dpdeblur.runs.checkpoints import load_model, read_checkpoint
from dpdeblur.runs.releases import detect_release, dpdnet_keras, release_for_model
from dpdeblur.runs.releases.dpdnet_keras import convert, read_keras_hdf5

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAYERS_TSV = FIXTURES / "dpdnet_keras_layers.tsv"
REFERENCE = FIXTURES / "dpdnet_keras_output_f64_nhwc_bgr.npy"
PARAMS = 31_035_151
# RGB model <- BGR release: our input channel i is the release's IN_ORDER[i], our output
# channel j its OUT_ORDER[j] (left view then right view, each R, G, B).
IN_ORDER = [2, 1, 0, 5, 4, 3]
OUT_ORDER = [2, 1, 0]


def _shape(text: str) -> tuple[int, ...] | None:
    text = text.strip("() ,")
    return None if text in ("", "-") else tuple(int(n) for n in text.split(",") if n.strip())


@functools.cache
def release_table() -> tuple[dict, ...]:
    """The release's 39 layers in graph (= file) order: name, type, kernel, bias, our key."""
    rows = []
    for line in LAYERS_TSV.read_text().splitlines()[1:]:
        cells = line.split("\t")
        if cells[0].startswith("#"):
            continue
        name, _, kind, kernel, bias, activation, _, inbound, key, _ = cells
        rows.append(
            {
                "name": name,
                "type": kind,
                "kernel": _shape(kernel),
                "bias": _shape(bias),
                "activation": activation,
                "inbound": [i for i in inbound.split(",") if i],
                "key": key,
            }
        )
    return tuple(rows)


def convs() -> list[dict]:
    return [row for row in release_table() if row["type"] == "Conv2D"]


@functools.cache
def fingerprint_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """conv2d_k -> (kernel (H, W, in, out), bias), float32 as the release stores them."""
    weights = {}
    for k, row in enumerate(convs(), start=1):
        h, w, cin, cout = row["kernel"]
        kernel = np.random.RandomState(k).uniform(-1, 1, size=h * w * cin * cout)
        kernel = kernel.reshape(h, w, cin, cout) * math.sqrt(6 / (h * w * cin))
        bias = np.random.RandomState(1000 + k).uniform(-0.1, 0.1, size=cout)
        weights[row["name"]] = (kernel.astype(np.float32), bias.astype(np.float32))
    return weights


def model_config() -> dict:
    """A Keras 2.2.4 ``model_config`` of the release (the converter does not read it)."""
    layers = []
    for row in release_table():
        config: dict = {"name": row["name"], "trainable": True}
        if row["type"] == "Conv2D":
            h, w, _, out = row["kernel"]
            config.update(
                filters=out,
                kernel_size=[h, w],
                strides=[1, 1],
                padding="valid" if h == 1 else "same",
                data_format="channels_last",
                activation=row["activation"],
                use_bias=True,
                kernel_initializer={"class_name": "VarianceScaling" if h > 1 else "glorot_uniform"},
            )
        elif row["type"] == "InputLayer":
            config.update(batch_input_shape=[None, None, None, 6], dtype="float32")
        layers.append(
            {
                "name": row["name"],
                "class_name": row["type"],
                "config": config,
                "inbound_nodes": [[[i, 0, 0, {}] for i in row["inbound"]]]
                if row["inbound"]
                else [],
            }
        )
    return {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["conv2d_24", 0, 0]],
        },
    }


def write_keras_file(path: Path, layout: str = "model") -> Path:
    """The release's file as Keras 2.2.4 writes it: ``model`` (``model.save``, what the
    authors' ModelCheckpoint wrote) or ``weights`` (``save_weights``)."""
    weights = fingerprint_weights()
    with h5py.File(path, "w") as f:
        if layout == "model":
            f.attrs["keras_version"] = b"2.2.4"
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps(model_config()).encode("utf8")
            f.attrs["training_config"] = json.dumps(
                {
                    "optimizer_config": {"class_name": "Adam", "config": {"lr": 2e-5}},
                    "loss": "mean_squared_error",
                    "metrics": [],
                    "sample_weight_mode": None,
                    "loss_weights": None,
                }
            ).encode("utf8")
            group = f.create_group("model_weights")
            # The Adam state, abbreviated: the converter must ignore it.
            optimizer = f.create_group("optimizer_weights")
            names = [b"Adam/iterations:0", b"training/Adam/Variable:0"]
            optimizer.attrs["weight_names"] = np.array(names)
            optimizer.create_dataset(names[0].decode(), data=np.int64(123456))
            optimizer.create_dataset(names[1].decode(), data=np.zeros((3, 3, 6, 64), "f4"))
        else:
            group = f
        group.attrs["layer_names"] = np.array([row["name"].encode() for row in release_table()])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.2.4"
        for row in release_table():
            layer = group.create_group(row["name"])
            if row["name"] not in weights:
                layer.attrs["weight_names"] = np.array([])  # what Keras writes: float64, empty
                continue
            names = [f"{row['name']}/kernel:0", f"{row['name']}/bias:0"]
            layer.attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, value in zip(names, weights[row["name"]], strict=True):
                layer.create_dataset(name, data=value)
    return path


def fingerprint_input() -> np.ndarray:
    """x[0, h, w, c] = 0.5 + 0.4 sin(0.37 h + 0.23 w + 0.9 c), NHWC, the release's order."""
    h, w, c = np.meshgrid(np.arange(64), np.arange(64), np.arange(6), indexing="ij")
    return (0.5 + 0.4 * np.sin(0.37 * h + 0.23 * w + 0.9 * c))[None]


@pytest.fixture(scope="module")
def release_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dpdnet") / "defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5"
    return write_keras_file(path)


@pytest.fixture(scope="module")
def payload(release_file) -> dict:
    return read_keras_hdf5(release_file)


@pytest.fixture(scope="module")
def model():
    return create_model("dpdnet")


@pytest.fixture(scope="module")
def converted(payload, model) -> dict[str, torch.Tensor]:
    return convert(payload, model)


def edited(payload: dict, layers: dict) -> dict:
    return {**payload, "layers": layers}


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# -- the layer table and the file layout --------------------------------------------------


def test_the_table_is_the_releases_24_convs_and_our_dpdnet(model):
    rows = convs()
    assert len(release_table()) == 39 and len(rows) == 24
    total = sum(math.prod(r["kernel"]) + r["bias"][0] for r in rows)
    assert total == PARAMS == sum(p.numel() for p in model.parameters())
    assert [(r["name"], r["kernel"], r["key"]) for r in rows] == [
        (name, kernel, key) for name, kernel, key in dpdnet_keras.RELEASE_CONVS
    ]


def test_the_file_is_read_in_keras_layer_order(release_file, payload):
    with h5py.File(release_file, "r") as f:
        stored = list(f["model_weights"])  # HDF5 lists groups by name: conv2d_1, conv2d_10, ...
    names = [row["name"] for row in release_table()]
    assert stored != names and sorted(stored) == sorted(names)
    assert list(payload["layers"]) == names
    assert payload["layout"] == "model" and payload["keras_version"] == "2.2.4"
    assert payload["layers"]["max_pooling2d_1"] == {}
    assert list(payload["layers"]["conv2d_3"]) == ["conv2d_3/kernel:0", "conv2d_3/bias:0"]


def test_an_hdf5_file_is_read_as_keras_and_detected_as_the_release(release_file):
    payload = read_checkpoint(release_file)
    assert detect_release(payload) is dpdnet_keras
    assert release_for_model("dpdnet") is dpdnet_keras
    assert model_info("dpdnet").weights_format == dpdnet_keras.NAME == "dpdnet-keras-hdf5"
    assert model_info("dpdnet_small").weights_format is None


# -- conversion ---------------------------------------------------------------------------


def test_every_tensor_lands_transposed_and_colour_permuted(converted, model):
    assert set(converted) == set(model.state_dict())
    weights = fingerprint_weights()
    for k, row in enumerate(convs(), start=1):
        kernel, bias = (torch.from_numpy(a) for a in weights[row["name"]])
        ours_w, ours_b = converted[f"{row['key']}.weight"], converted[f"{row['key']}.bias"]
        assert ours_w.dtype == torch.float32 and ours_w.is_contiguous()
        expected = kernel.permute(3, 2, 0, 1)  # (H, W, in, out) -> (out, in, H, W)
        if k == 1:
            expected = expected[:, IN_ORDER]
        if k == 24:
            expected, bias = expected[OUT_ORDER], bias[OUT_ORDER]
        assert torch.equal(ours_w, expected), row["name"]
        assert torch.equal(ours_b, bias), row["name"]
    # spot checks of the index arithmetic, written out
    first = weights["conv2d_1"][0]
    assert converted["encoder.0.0.weight"][5, 0, 1, 2] == first[1, 2, 2, 5]  # our L_R = L_R
    assert converted["encoder.0.0.weight"][7, 4, 0, 1] == first[0, 1, 4, 7]  # R_G = R_G
    assert converted["encoder.0.0.weight"][7, 3, 0, 1] == first[0, 1, 5, 7]  # R_R = R_R
    last_w, last_b = weights["conv2d_24"]
    assert converted["head.2.weight"][0, 1, 0, 0] == last_w[0, 0, 1, 2]  # our R = their R
    assert converted["head.2.bias"][2] == last_b[0]  # our B = their B
    assert converted["up.0.0.conv.weight"][3, 7, 1, 0] == weights["conv2d_11"][0][1, 0, 7, 3]


def test_names_are_not_relied_on(payload, converted, model):
    # tf.keras numbers the same layers conv2d, conv2d_1, ..., conv2d_23.
    renamed = {}
    for name, weights in payload["layers"].items():
        new = {"conv2d_1": "conv2d"}.get(name) or (
            f"conv2d_{int(name.split('_')[1]) - 1}" if name.startswith("conv2d_") else name
        )
        renamed[new] = {w.replace(name, new, 1): v for w, v in weights.items()}
    again = convert(edited(payload, renamed), model)
    assert all(torch.equal(again[k], converted[k]) for k in converted)


def test_a_missing_layer_is_named(payload, model):
    layers = {k: v for k, v in payload["layers"].items() if k != "conv2d_12"}
    with pytest.raises(CheckpointError) as err:
        convert(edited(payload, layers), model, "x.hdf5")
    message = one_line(err)
    assert "no layer for conv2d_12, kernel (3, 3, 1024, 512) -> our decoder.0.0" in message
    assert "layers with weights: 23" in message and message.startswith("x.hdf5: ")


def test_an_extra_layer_is_named(payload, model):
    layers = {}
    for name, weights in payload["layers"].items():
        layers[name] = weights
        if name == "conv2d_5":
            gamma = np.ones(256, np.float32)
            layers["batch_normalization_1"] = {
                "batch_normalization_1/gamma:0": gamma,
                "batch_normalization_1/beta:0": gamma,
            }
    with pytest.raises(CheckpointError) as err:
        convert(edited(payload, layers), model)
    message = one_line(err)
    assert "unexpected layer 'batch_normalization_1'" in message and "weights: 25" in message


def test_a_misshaped_weight_is_named(payload, model):
    layers = dict(payload["layers"])
    layers["conv2d_7"] = {
        "conv2d_7/kernel:0": np.zeros((3, 3, 256, 256), np.float32),
        "conv2d_7/bias:0": np.zeros(512, np.float32),
    }
    with pytest.raises(CheckpointError) as err:
        convert(edited(payload, layers), model)
    message = one_line(err)
    assert "layer 'conv2d_7' weight 'conv2d_7/kernel:0' has shape (3, 3, 256, 256)" in message
    assert "expected (3, 3, 256, 512)" in message and "encoder.3.0" in message
    layers["conv2d_7"] = {**payload["layers"]["conv2d_7"]}
    layers["conv2d_7"]["conv2d_7/bias:0"] = np.zeros(256, np.float32)
    with pytest.raises(CheckpointError, match=r"'conv2d_7/bias:0' has shape \(256,\)"):
        convert(edited(payload, layers), model)


def test_another_width_is_refused(payload):
    with pytest.raises(CheckpointError, match=r"do not fit this model.*wrong shape"):
        convert(payload, create_model("dpdnet", width=0.125))


# -- files: both layouts, load_model, the CLI ---------------------------------------------


def test_load_model_detects_the_file_with_no_model_named(release_file, converted):
    net, info = load_model(release_file)
    assert net.registry_name == "dpdnet" and not net.training
    assert info["kind"] == "release" and info["release_format"] == "dpdnet-keras-hdf5"
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())


def test_a_weights_only_file_loads_the_same(tmp_path, converted):
    path = write_keras_file(tmp_path / "weights.h5", layout="weights")
    assert read_keras_hdf5(path)["layout"] == "weights"
    net, info = load_model(path, "dpdnet")
    assert info["release_format"] == "dpdnet-keras-hdf5"
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())


def test_cli_converts_and_the_output_loads(release_file, tmp_path, capsys, converted):
    out = tmp_path / "sub" / "dpdnet_release.pt"
    assert convert_main(["dpdnet", str(release_file), str(out)]) == 0
    assert "converted" in capsys.readouterr().out
    net, info = load_model(out)
    assert info["kind"] == "converted" and net.registry_name == "dpdnet"
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())


def test_cli_refuses_another_keras_model_in_one_line(tmp_path, capsys):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as f:
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([b"input_1", b"dense_1"])
        group.create_group("input_1").attrs["weight_names"] = np.array([])
        dense = group.create_group("dense_1")
        dense.attrs["weight_names"] = np.array([b"dense_1/kernel:0", b"dense_1/bias:0"])
        dense.create_dataset("dense_1/kernel:0", data=np.zeros((4, 2), np.float32))
        dense.create_dataset("dense_1/bias:0", data=np.zeros(2, np.float32))
    out = tmp_path / "out.pt"
    assert convert_main(["dpdnet", str(path), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(path) in err
    assert "'dense_1'" in err and not out.exists()


def test_long_name_lists_split_in_chunks_are_joined(tmp_path):
    # Keras splits an attribute list over HDF5's 64 KB header limit into name0, name1, ...
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names0"] = np.array([b"input_1", b"conv2d_1"])
        f.attrs["layer_names1"] = np.array([b"dropout_1"])
        for name in ("input_1", "conv2d_1", "dropout_1"):
            f.create_group(name).attrs["weight_names"] = np.array([])
    payload = read_checkpoint(path)
    assert payload["layout"] == "weights"
    assert payload["layers"] == {"input_1": {}, "conv2d_1": {}, "dropout_1": {}}


def test_unreadable_files_are_one_line_errors(tmp_path, monkeypatch, release_file):
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(dpdnet_keras.HDF5_SIGNATURE + b"\x00 not really" * 20)
    with pytest.raises(CheckpointError, match="not a readable HDF5 file"):
        read_checkpoint(corrupt)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(CheckpointError, match="without Keras's 'layer_names'"):
        read_checkpoint(plain)
    monkeypatch.setattr(dpdnet_keras, "h5py", None)
    with pytest.raises(CheckpointError, match=r"needs h5py.*pip install h5py"):
        read_checkpoint(release_file)


# -- the numeric fingerprint --------------------------------------------------------------


def test_the_fingerprint_is_reproduced(release_file):
    reference = np.load(REFERENCE)
    assert reference.shape == (1, 64, 64, 3)
    assert reference.mean() == pytest.approx(0.6141790276, abs=1e-9)
    net, _ = load_model(release_file)
    x = torch.from_numpy(fingerprint_input()).permute(0, 3, 1, 2).float()
    left, right = x[:, [2, 1, 0]], x[:, [5, 4, 3]]  # the views in R, G, B
    with torch.no_grad():
        rgb = net(left, right)
        swapped = net(right, left)
    ours = rgb[:, [2, 1, 0]].permute(0, 2, 3, 1).double().numpy()  # back to NHWC B, G, R
    error = np.abs(ours - reference).max()
    print(f"fingerprint: max abs difference {error:.3g}")
    assert error < 1e-5
    # a control: the views swapped give another image
    assert (
        np.abs(swapped[:, [2, 1, 0]].permute(0, 2, 3, 1).double().numpy() - reference).max() > 0.1
    )


# -- the release's initialisation ---------------------------------------------------------


def test_the_initialisation_is_keras_he_normal_and_glorot_uniform():
    torch.manual_seed(0)
    state = create_model("dpdnet").state_dict()
    for k, row in enumerate(convs(), start=1):
        weight, bias = state[f"{row['key']}.weight"], state[f"{row['key']}.bias"]
        assert torch.count_nonzero(bias) == 0, row["name"]
        h, w, cin, _ = row["kernel"]
        fan_in, n = h * w * cin, weight.numel()
        if k == 24:  # glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
            assert weight.abs().max() <= 1.0
            continue
        target = math.sqrt(2 / fan_in)
        bound = 2 * target / 0.87962566103423978  # two standard deviations of the normal
        # the sample std of a truncated normal (kurtosis 2.4) has relative error
        # sqrt((kurtosis - 1) / (4 n)); allow six of those
        assert abs(weight.std().item() / target - 1) < 6 * math.sqrt(1.4 / (4 * n)), row["name"]
        assert abs(weight.mean().item()) < 6 * target / math.sqrt(n), row["name"]
        assert weight.abs().max() <= bound * (1 + 1e-6), row["name"]
        assert weight.abs().max() > 0.95 * bound, row["name"]  # truncated there, not sooner


def test_the_residual_variant_keeps_its_zero_head():
    torch.manual_seed(0)
    model = create_model("dpdnet_small")
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    assert all(
        torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith(".bias")
    )
