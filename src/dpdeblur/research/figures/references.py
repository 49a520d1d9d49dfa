"""The papers' published results as reference points for the PSNR-versus-size figures.

PSNRs come from the paper-table data (``experiments/tables/dpanet_table1.yaml``, read by
:func:`dpdeblur.research.tables.load_table`): the DPANet paper's Table I on the DPDD test set, the
comparison its Fig. 9 draws against parameters. Sizes: a method that has a registry model
here (DPANet, DPDNet) is measured on that model; DPANet's count matches the paper's 63.98M
to the unit, and the paper's "213.77G FLOPs" is the thop-like MAC count (docs/dpanet.md),
so every point on the MACs axis uses the same complete count. Methods whose size neither
the table data nor this package gives (RDPD+, BaMBNet, Restormer) are drawn as horizontal
lines at their PSNR.

K3DN's own results are not known here (docs/k3dn.md: its tables could not be read), so it
has no reference point; add one with ``--references FILE`` once typed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from dpdeblur.errors import DpdeblurError
from dpdeblur.models import is_model
from dpdeblur.research.tables import load_table

REFERENCE_TABLE = "dpanet_table1"


@dataclass(frozen=True)
class ReferencePoint:
    """A published PSNR and, where known, the method's size."""

    method: str
    psnr: float
    source: str
    params: float | None = None  # count (not millions)
    macs: float | None = None  # MACs at 256x256 (complete count)
    registry_model: str | None = None  # our model whose measured size stands in


def published(table: str = REFERENCE_TABLE) -> list[ReferencePoint]:
    """The rows of a paper table with a published PSNR; rows whose id is a registry model
    get their size from that model."""
    spec = load_table(table)
    source = f"{spec.source.get('paper', spec.title)}, Table {spec.source.get('table', '?')}"
    return [
        ReferencePoint(
            method=row.label,
            psnr=row.reference["psnr"],
            source=source,
            registry_model=row.id if is_model(row.id) else None,
        )
        for row in spec.rows
        if row.reference and "psnr" in row.reference
    ]


def load_references(path: str | Path) -> list[ReferencePoint]:
    """Extra reference points from a YAML list of ``{method, psnr, source, params?, macs?}``
    (``params`` as a count, ``macs`` at 256x256)."""
    path = Path(path)
    if not path.is_file():
        raise DpdeblurError("reference file not found", path, "pass a YAML list of points")
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DpdeblurError(f"cannot read YAML ({type(err).__name__})", path) from None
    if not isinstance(entries, list):
        raise DpdeblurError("expected a YAML list of reference points", path)
    points = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "method" not in entry or "psnr" not in entry:
            raise DpdeblurError(
                f"entry {i} needs at least 'method' and 'psnr'", path, "see docs/benchmarks.md"
            )
        points.append(
            ReferencePoint(
                method=str(entry["method"]),
                psnr=float(entry["psnr"]),
                source=str(entry.get("source", path.name)),
                params=None if entry.get("params") is None else float(entry["params"]),
                macs=None if entry.get("macs") is None else float(entry["macs"]),
                registry_model=entry.get("registry_model"),
            )
        )
    return points
