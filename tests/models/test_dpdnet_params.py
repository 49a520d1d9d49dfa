"""DPDNet's parameter count against its authors' published model (issue: paper tables, Table I).

Neither the DPDNet paper (ECCV 2020) nor DPANet's Table I gives DPDNet's parameter count;
the published figure is the authors' released Keras model: ``DPDNet/model.py`` of
github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel (commit be8bbac, function
``unet``), 6 input channels (``config.py``: ``nb_ch_all = 6``, ``nb_ch = 3``). Its layers,
transcribed below as (kernel, in, out) and counted here, total 31,035,151 parameters
(31.04M). docs/reproduce.md records the figure and its source.
"""

from __future__ import annotations

from dpdeblur.models import create_model

# (kernel size, input channels, output channels) of every Conv2D of the release, in order.
RELEASE_BODY = [
    (3, 6, 64), (3, 64, 64),
    (3, 64, 128), (3, 128, 128),
    (3, 128, 256), (3, 256, 256),
    (3, 256, 512), (3, 512, 512),
    (3, 512, 1024), (3, 1024, 1024),
    (2, 1024, 512), (3, 1024, 512), (3, 512, 512),
    (2, 512, 256), (3, 512, 256), (3, 256, 256),
    (2, 256, 128), (3, 256, 128), (3, 128, 128),
    (2, 128, 64), (3, 128, 64), (3, 64, 64),
]  # fmt: skip
# The release's head: a 3x3 conv 64->3 with ReLU, then a 1x1 conv 3->3 with sigmoid.
RELEASE_HEAD = [(3, 64, 3), (1, 3, 3)]
RELEASE_PARAMS = 31_035_151


def conv_params(kernel: int, cin: int, cout: int) -> int:
    return kernel * kernel * cin * cout + cout


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_release_has_31_035_151_parameters():
    total = sum(conv_params(*layer) for layer in RELEASE_BODY + RELEASE_HEAD)
    assert total == RELEASE_PARAMS
    assert f"{total / 1e6:.2f}M" == "31.04M"


def test_our_dpdnet_matches_the_release_layer_for_layer():
    model = create_model("dpdnet")
    body = count(model) - count(model.head)
    assert body == sum(conv_params(*layer) for layer in RELEASE_BODY)
    assert count(model.head) == sum(conv_params(*layer) for layer in RELEASE_HEAD)


def test_our_dpdnet_has_the_releases_parameter_count():
    assert count(create_model("dpdnet")) == RELEASE_PARAMS
