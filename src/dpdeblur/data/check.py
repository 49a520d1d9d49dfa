"""Validate a dataset root: layout, counts, sizes and bit depths per split, and problems.

``dpdeblur-data check ROOT`` prints a summary per split and one line per problem (missing
split, count mismatch, L/R size mismatch, 8-bit file in a 16-bit dataset, corrupt or empty
file...), and exits non-zero when there is any. Every file is decoded in full by default
(a truncated PNG has a valid header); ``quick`` reads PNG headers only.
"""

from __future__ import annotations

import struct
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dpdeblur.data.io import read_raw
from dpdeblur.data.layout import SPLITS, DPRecord, index_dpdd_split, index_pixel, resolve_dpdd_root
from dpdeblur.data.samples import DecodedFile, sample_problems
from dpdeblur.errors import BitDepthError, DataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class SplitReport:
    split: str
    count: int = 0
    sizes: Counter = field(default_factory=Counter)
    bit_depths: Counter = field(default_factory=Counter)
    scenes: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        sizes = ", ".join(f"{w}x{h} ({n})" for (h, w), n in self.sizes.most_common())
        bits = ", ".join(f"{b}-bit ({n})" for b, n in sorted(self.bit_depths.items()))
        line = f"{self.split}: {self.count} samples; sizes {sizes or '-'}; {bits or '-'}"
        if self.scenes:
            line += "; " + ", ".join(f"{s} {n}" for s, n in sorted(self.scenes.items()))
        return line


@dataclass
class CheckReport:
    root: Path
    kind: str
    layout: str | None = None
    splits: list[SplitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"{self.kind} dataset at {self.root} (layout: {self.layout or 'unknown'})"]
        lines += [f"  {split.summary()}" for split in self.splits]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"error: {p}" for p in self.problems]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def png_header(path: Path) -> tuple[int, int, int]:
    """(height, width, bit depth) from a PNG's IHDR chunk, without decoding pixels."""
    with open(path, "rb") as handle:
        head = handle.read(29)
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise DataError(
            "not a valid PNG file (bad signature or header)", path, "re-download or re-export it"
        )
    width, height = struct.unpack(">II", head[16:24])
    return height, width, head[24]


def _inspect(role: str, path: Path, quick: bool) -> DecodedFile:
    if quick and path.suffix.lower() == ".png":
        height, width, bits = png_header(path)
        return DecodedFile(role, path, (height, width), bits)
    raw = read_raw(path)
    return DecodedFile(role, path, raw.pixels.shape[:2], raw.bit_depth)


def _inspect_or_error(role: str, path: Path, quick: bool) -> DecodedFile | DataError:
    try:
        return _inspect(role, path, quick)
    except DataError as err:
        return err


def _check_records(
    records: list[DPRecord],
    report: SplitReport,
    problems: list[str],
    warnings: list[str],
    min_bits: int | None,
    allow_lower_bits: bool,
    quick: bool,
    workers: int,
) -> None:
    """Decode every file of ``records`` (``workers`` threads) and report each sample's
    problems (:func:`~dpdeblur.data.samples.sample_problems`)."""
    jobs = [(record, role, path) for record in records for role, path in record.files().items()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _inspect_or_error(job[1], job[2], quick), jobs))
    decoded: dict[str, list[DecodedFile]] = {}
    for (record, _, _), result in zip(jobs, results, strict=True):
        if isinstance(result, DataError):
            problems.append(result.one_line())
            continue
        report.bit_depths[result.bit_depth] += 1
        decoded.setdefault(record.name, []).append(result)
    for record in records:
        files = decoded.get(record.name)
        if not files:
            continue
        report.sizes[files[0].size] += 1
        for problem in sample_problems(files, min_bits, "pass --allow-8bit to accept them"):
            if allow_lower_bits and isinstance(problem, BitDepthError):
                warnings.append(f"{problem.path}: {problem.problem}")
            else:
                problems.append(problem.one_line())
        if record.scene:
            report.scenes[record.scene] += 1


def check_dataset(
    root: str | Path,
    kind: str = "auto",
    splits: tuple[str, ...] | None = None,
    allow_8bit: bool = False,
    quick: bool = False,
    workers: int = 2,
) -> CheckReport:
    """Check a DPDD or PIXEL root; never raises for data problems, it reports them."""
    root = Path(root).expanduser()
    if kind == "auto":
        try:
            resolve_dpdd_root(root)
            kind = "dpdd"
        except DataError:
            kind = "pixel"
    report = CheckReport(root=root, kind=kind)
    if kind == "pixel":
        try:
            records, report.layout = index_pixel(root, (splits or ("test",))[0])
        except DataError as err:
            report.problems.append(err.one_line())
            return report
        split_report = SplitReport(split=(splits or ("test",))[0], count=len(records))
        _check_records(
            records, split_report, report.problems, report.warnings, None, True, quick, workers
        )
        report.splits.append(split_report)
        return report
    try:
        tree, report.layout = resolve_dpdd_root(root)
    except DataError as err:
        report.problems.append(err.one_line())
        return report
    for split in splits or SPLITS:
        try:
            records = index_dpdd_split(tree, split, report.layout)
        except DataError as err:
            report.problems.append(err.one_line())
            continue
        split_report = SplitReport(split=split, count=len(records))
        _check_records(
            records, split_report, report.problems, report.warnings, 16, allow_8bit, quick, workers
        )
        report.splits.append(split_report)
    return report
