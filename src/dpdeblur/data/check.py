"""Validate a dataset root: layout, counts, sizes and bit depths per split, and problems.

``dpdeblur-data check ROOT`` prints a summary per split and one line per distinct problem
(missing split, count mismatch, L/R size mismatch, 8-bit file in a 16-bit dataset, corrupt
or empty file...): files with the same problem share a line that counts them and names the
first few (:func:`group_problems`). It exits non-zero when there is any. Every file is
decoded in full by default (a truncated PNG has a valid header); ``quick`` reads PNG headers
only. With ``kind="auto"`` a root that is neither DPDD nor PIXEL is one problem naming the
layouts looked for (:func:`~dpdeblur.data.layout.detect_kind`).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dpdeblur.data.io import read_raw
from dpdeblur.data.layout import (
    SPLITS,
    DPRecord,
    detect_kind,
    index_dpdd_split,
    index_pixel,
    is_synthetic_tree,
    resolve_dpdd_root,
)
from dpdeblur.data.samples import DecodedFile, sample_problems
from dpdeblur.errors import BitDepthError, DataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Files named on the line of a problem that several files share.
EXAMPLE_FILES = 3


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


def _under(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def group_problems(errors: Sequence[DataError], root: Path, with_fix: bool = True) -> list[str]:
    """One line per distinct problem (same text and fix), in the order first met.

    A problem of one file reads as before (``path: problem -- fix``); one that several files
    share is counted, with the first :data:`EXAMPLE_FILES` files relative to ``root``:
    ``8-bit image where 16-bit is expected: 20 files under ROOT (a.png, b.png, ...) -- fix``.
    """
    groups: dict[tuple[str, str | None], list[DataError]] = {}
    for error in errors:
        groups.setdefault((error.problem, error.fix if with_fix else None), []).append(error)
    lines = []
    for (problem, fix), members in groups.items():
        paths = [e.path for e in members if e.path is not None]
        if len(members) == 1:
            head = f"{paths[0]}: {problem}" if paths else problem
        elif paths:
            shown = [_under(path, root) for path in paths[:EXAMPLE_FILES]]
            more = ", ..." if len(paths) > EXAMPLE_FILES else ""
            head = f"{problem}: {len(paths)} files under {root} ({', '.join(shown)}{more})"
        else:
            head = f"{problem} ({len(members)} times)"
        lines.append(f"{head} -- {fix}" if fix else head)
    return lines


@dataclass
class CheckReport:
    """What a check found: the layout, a summary per split, and every problem met.

    ``errors`` and ``lower_bits`` (bit-depth shortfalls accepted as warnings) hold one
    error per file or folder; :attr:`problems` and :attr:`warnings` are their lines, one
    per distinct problem.
    """

    root: Path
    kind: str
    layout: str | None = None
    splits: list[SplitReport] = field(default_factory=list)
    errors: list[DataError] = field(default_factory=list)
    lower_bits: list[DataError] = field(default_factory=list)
    synthetic: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def problems(self) -> list[str]:
        """One line per distinct problem (:func:`group_problems`)."""
        return group_problems(self.errors, self.root)

    @property
    def warnings(self) -> list[str]:
        return group_problems(self.lower_bits, self.root, with_fix=False)

    def render(self, problems: bool = True) -> str:
        """The summary, warnings, and (unless ``problems=False``) the problems' lines."""
        made = ", synthetic: written by dpdeblur-data synth" if self.synthetic else ""
        if self.kind == "unknown":
            lines = [f"no known dataset layout at {self.root}"]
        else:
            layout = f"layout: {self.layout or 'unknown'}{made}"
            lines = [f"{self.kind} dataset at {self.root} ({layout})"]
        lines += [f"  {split.summary()}" for split in self.splits]
        lines += [f"warning: {w}" for w in self.warnings]
        if problems:
            lines += [f"error: {p}" for p in self.problems]
        if self.ok:
            lines.append("OK")
        else:
            found, where = len(self.problems), len(self.errors)
            lines.append(
                f"{found} problem(s) found" + (f" ({where} in all)" if where > found else "")
            )
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
    problems: list[DataError],
    warnings: list[DataError],
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
            problems.append(result)
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
                warnings.append(problem)
            else:
                problems.append(problem)
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
    report = CheckReport(root=root, kind=kind, synthetic=is_synthetic_tree(root))
    if kind == "auto":
        try:
            report.kind = kind = detect_kind(root, (splits or ("test",))[0])
        except DataError as err:
            report.kind = "unknown"
            report.errors.append(err)
            return report
    if kind == "pixel":
        split = (splits or ("test",))[0]
        try:
            records, report.layout = index_pixel(root, split)
        except DataError as err:
            report.errors.append(err)
            return report
        split_report = SplitReport(split=split, count=len(records))
        _check_records(
            records, split_report, report.errors, report.lower_bits, None, True, quick, workers
        )
        report.splits.append(split_report)
        return report
    try:
        tree, report.layout = resolve_dpdd_root(root)
    except DataError as err:
        report.errors.append(err)
        return report
    for split in splits or SPLITS:
        try:
            records = index_dpdd_split(tree, split, report.layout)
        except DataError as err:
            report.errors.append(err)
            continue
        split_report = SplitReport(split=split, count=len(records))
        _check_records(
            records,
            split_report,
            report.errors,
            report.lower_bits,
            16,
            allow_8bit,
            quick,
            workers,
        )
        report.splits.append(split_report)
    return report
