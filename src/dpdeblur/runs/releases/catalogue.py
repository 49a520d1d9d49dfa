"""What is known about each public dual-pixel deblurring release: the front door's list.

One :class:`ReleaseInfo` per release format (keyed by the format module's ``NAME``):
the file its authors publish and where, what the file holds, the parameter count of the
network it loads into, the colour order and bit depth the authors fed it, the evaluation
protocol they scored with (a :mod:`dpdeblur.models.release_protocol` name, or ``None``
where it equals dpdeblur's on DPDD), and the row of the papers' tables it fills.
``dpdeblur-weights list`` prints these; docs/weights.md is the long form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseInfo:
    """A public release of a dual-pixel deblurring network's weights."""

    format: str  # the release format's NAME (dpdeblur.runs.releases)
    name: str  # the method, short
    model: str  # the registry model its weights load into
    title: str  # method and paper
    file_name: str  # the file as its authors name it
    source: str  # where its authors publish it
    layout: str  # what the file holds
    parameters: int  # parameters of the network (elements)
    colour: str  # channel order the authors fed and got back
    bits: int  # bit depth of the views the authors fed
    protocol: str | None  # release protocol name, or None: dpdeblur's protocol on DPDD
    licence: str  # what the authors state about reuse
    row: str  # the row id of the papers' tables (experiments/tables) it fills
    notes: str = ""


CATALOGUE: dict[str, ReleaseInfo] = {
    info.format: info
    for info in (
        ReleaseInfo(
            format="dpdnet-keras-hdf5",
            name="DPDNet",
            model="dpdnet",
            title="DPDNet (Abuolaim and Brown, ECCV 2020)",
            file_name="defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5",
            source=(
                "github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel "
                "(README, 'Testing': the sync.com link)"
            ),
            layout="Keras 2.2.4 whole-model HDF5 (weights-only files also read)",
            parameters=31_035_151,
            colour="B,G,R in and out (the converter reorders the weights: R,G,B here)",
            bits=16,
            protocol=None,
            licence="see the repository (no weights licence stated in its README)",
            row="dpdnet",
            notes="the release resizes non-1680x1120 test images to 1680x1120; DPDD needs none",
        ),
        ReleaseInfo(
            format="restormer-dp-pth",
            name="Restormer-DP",
            model="restormer_dp",
            title="Restormer, dual-pixel model (Zamir et al., CVPR 2022)",
            file_name="dual_pixel_defocus_deblurring.pth",
            source=(
                "github.com/swz30/Restormer (Defocus_Deblurring/README.md: the Google Drive "
                "folder of pre-trained models)"
            ),
            layout="torch.save of {'params': state_dict}, 495 tensors",
            parameters=26_132_548,
            colour="R,G,B",
            bits=16,
            protocol=None,
            licence="see the repository's LICENSE",
            row="restormer",
            notes="not single_image_defocus_deblurring.pth (the 3-channel model)",
        ),
        ReleaseInfo(
            format="dpanet-final-pth",
            name="DPANet",
            model="dpanet",
            title="DPANet (Li et al., Learning Dual-Pixel Alignment for Defocus Deblurring)",
            file_name="final.pth",
            source="github.com/liyucs/DPANet (the README's download link)",
            layout="torch.save of {'G_state_dict': ...} from nn.DataParallel, 212 tensors",
            parameters=63_983_859,
            colour="B,G,R in and out (the converter reorders the weights: R,G,B here)",
            bits=8,
            protocol="dpanet",
            licence="see the repository (no weights licence stated in its README)",
            row="dpanet",
            notes="trained and scored on 8-bit reads of the 16-bit PNGs, uint8-truncated",
        ),
        ReleaseInfo(
            format="k3dn-release-pt",
            name="K3DN",
            model="k3dn",
            title="K3DN (Yang et al., CVPR 2023), third-party inference copy",
            file_name="checkpoints/dp_2_ft/best.pt",
            source="github.com/cjsj166/k3dn (the only public K3DN code; inference only)",
            layout="bare state dict, 288 entries (236 parameters, 52 buffers)",
            parameters=16_099_350,
            colour="R,G,B",
            bits=16,
            protocol="k3dn",
            licence="none stated (an unlicensed third-party repository)",
            row="k3dn",
            notes="evaluated resized to 1152x1792 and back (bicubic)",
        ),
    )
}


def release_info(fmt: str) -> ReleaseInfo:
    """The catalogue entry of release format ``fmt`` (KeyError if unknown)."""
    return CATALOGUE[fmt]
