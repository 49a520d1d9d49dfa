"""Where DP datasets keep their files: layout detection and indexing (docs/evaluation.md,
"DPDD").

Two DPDD layouts are read, detected automatically:

``official`` (the public zip, ``dd_dp_dataset_png/``)::

    {split}_c/source/<name>.png      combined blurry view
    {split}_c/target/<tname>.png     all-in-focus target (a neighbouring frame: tname != name)
    {split}_l/source/<name>_L.png    left DP view
    {split}_r/source/<name>_R.png    right DP view

``restormer`` (Restormer's and mmagic's)::

    {split}/DPDD/{inputL,inputR,inputC,target}/<name>.png   (or {split}/{inputL,...})

Files are paired by sorted order within a split: sorting source and target names separately
gives the right pairing even though their names differ. Counts must match.

PIXEL layouts (left/right only): the DPDD-style ``{split}_l/source`` + ``{split}_r/source``
tree, ``inputL``/``inputR`` folders, or one folder of ``*_L.png`` / ``*_R.png`` pairs.

A view file's ``_L``/``_R`` suffix (either case) is read by :func:`split_view_suffix`, and
the sample's name is its stem without it (:func:`sample_name`), wherever views are named.

:func:`detect_kind` tells a DPDD root from a PIXEL one, and names every layout it looked
for when a folder is neither. Only PIXEL's own layouts (:data:`PIXEL_RELEASE_LAYOUTS`) say
that a portrait pair is a PIXEL capture to be turned to landscape; a flat folder of
``*_L``/``*_R`` pairs may come from any camera. A tree written by ``dpdeblur-data synth``
carries :data:`SYNTHETIC_MARKER` at its root (:func:`is_synthetic_tree`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dpdeblur.data.io import list_images
from dpdeblur.errors import DataError

SPLITS = ("train", "val", "test")

# How DP view files are told apart when they share a folder or a name (official layout).
VIEW_SUFFIXES = {"left": "_L", "right": "_R"}
_VIEW_SUFFIX = re.compile(r"^(?P<name>.+)_(?P<view>[LRlr])$")

# The layouts index_pixel finds that only PIXEL's release uses (not the flat "pairs" one).
PIXEL_RELEASE_LAYOUTS = ("official", "restormer")

# Every layout a dataset root is recognised by, as the errors name them.
KNOWN_LAYOUTS = (
    "DPDD official ({split}_c/source, {split}_c/target, {split}_l/source, {split}_r/source)",
    "DPDD restormer ({split}/DPDD/inputL, inputR, inputC, target)",
    "PIXEL ({split}_l/source + {split}_r/source, inputL + inputR, or *_L.png + *_R.png)",
)

# At the root of a tree written by `dpdeblur-data synth` (data.writer): synthetic scenes in
# DPDD's layout, whose scores are never set beside a paper's DPDD numbers.
SYNTHETIC_MARKER = "dpdeblur_synthetic.json"

# 0-based positions, in the name-sorted DPDD test list (76 scenes), of the indoor scenes.
DPDD_TEST_COUNT = 76
DPDD_INDOOR_POSITIONS = frozenset([*range(8, 14), 16, 32, *range(39, 57), *range(59, 68), 74, 75])


@dataclass(frozen=True)
class DPRecord:
    """One DP sample on disk. ``combined`` and ``target`` are None where the data has none."""

    name: str
    left: Path
    right: Path
    combined: Path | None = None
    target: Path | None = None
    scene: str | None = None

    def files(self) -> dict[str, Path]:
        """The sample's files by role, leaving out roles the data does not have."""
        roles = {
            "left": self.left,
            "right": self.right,
            "combined": self.combined,
            "target": self.target,
        }
        return {role: path for role, path in roles.items() if path is not None}


def _official_folders(root: Path, split: str) -> dict[str, Path]:
    return {
        "combined": root / f"{split}_c" / "source",
        "target": root / f"{split}_c" / "target",
        "left": root / f"{split}_l" / "source",
        "right": root / f"{split}_r" / "source",
    }


def _restormer_base(root: Path, split: str) -> Path:
    nested = root / split / "DPDD"
    return nested if nested.is_dir() else root / split


def _restormer_folders(root: Path, split: str) -> dict[str, Path]:
    base = _restormer_base(root, split)
    return {
        "combined": base / "inputC",
        "target": base / "target",
        "left": base / "inputL",
        "right": base / "inputR",
    }


LAYOUTS = {"official": _official_folders, "restormer": _restormer_folders}


def resolve_dpdd_root(root: str | Path) -> tuple[Path, str]:
    """Find the DPDD tree under ``root`` and say which layout it holds.

    ``root`` may be the tree itself or its parent (``.../dd_dp_dataset_png`` is looked into).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(
            "dataset root does not exist", root, "check the path to the dd_dp_dataset_png folder"
        )
    if not root.is_dir():
        raise DataError(
            "dataset root is not a folder", root, "pass the folder that holds the splits"
        )
    candidates = [root, root / "dd_dp_dataset_png"]
    for candidate in candidates:
        for split in SPLITS:
            if (candidate / f"{split}_c").is_dir() or (candidate / f"{split}_l").is_dir():
                return candidate, "official"
            if (candidate / split / "DPDD").is_dir() or (candidate / split / "inputL").is_dir():
                return candidate, "restormer"
    raise DataError(
        "not a DPDD dataset (no {split}_c/_l/_r folders and no {split}/DPDD/inputL folders)",
        root,
        "point to the unpacked dd_dp_dataset_png folder; see README, section Data",
    )


def split_view_suffix(stem: str) -> tuple[str, str | None]:
    """``"scene_L"`` -> ``("scene", "left")``, ``"scene_r"`` -> ``("scene", "right")``; a stem
    without a ``_L``/``_R`` suffix (either case) after its name -> ``(stem, None)``."""
    match = _VIEW_SUFFIX.match(stem)
    if match is None:
        return stem, None
    return match["name"], "left" if match["view"].upper() == "L" else "right"


def sample_name(path: Path, view: str) -> str:
    """The name of the sample a ``view`` ("left"/"right") file belongs to: its stem without
    that view's suffix (``_L`` or ``_R``, either case), or the whole stem if it has none."""
    name, found = split_view_suffix(path.stem)
    return name if found == view else path.stem


def _images_or_error(folder: Path, role: str, split: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(
            f"missing {role} folder of split '{split}'",
            folder,
            "the download is incomplete or the root points elsewhere; run `dpdeblur-data check ROOT`",
        )
    images = list_images(folder)
    if not images:
        raise DataError(
            f"empty {role} folder of split '{split}' (no PNG/TIFF files)",
            folder,
            "re-extract the dataset",
        )
    return images


def dpdd_scene_labels(count: int) -> list[str | None]:
    """Indoor/outdoor labels by sorted position for the 76-image DPDD test split.

    Other counts (a subset, synthetic data) have no known labels: ``None`` each.
    """
    if count != DPDD_TEST_COUNT:
        return [None] * count
    return ["indoor" if i in DPDD_INDOOR_POSITIONS else "outdoor" for i in range(count)]


def index_dpdd_split(root: Path, split: str, layout: str) -> list[DPRecord]:
    """The records of one DPDD split, paired by sorted order, with every count checked."""
    folders = LAYOUTS[layout](root, split)
    files = {role: _images_or_error(folder, role, split) for role, folder in folders.items()}
    counts = {role: len(paths) for role, paths in files.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{role} {n} ({folders[role]})" for role, n in counts.items())
        raise DataError(
            f"split '{split}' has different file counts per view: {detail}",
            root,
            "the views must pair one to one; re-extract the missing files",
        )
    records = []
    labels = (
        dpdd_scene_labels(counts["combined"]) if split == "test" else [None] * counts["combined"]
    )
    for i, combined in enumerate(files["combined"]):
        name = combined.stem
        for view in ("left", "right"):
            path = files[view][i]
            view_name = sample_name(path, view) if layout == "official" else path.stem
            if view_name != name:
                raise DataError(
                    f"{view} view name does not match combined view '{combined.name}' at sorted position {i}",
                    files[view][i],
                    "a view file is missing or misnamed; run `dpdeblur-data check ROOT`",
                )
        records.append(
            DPRecord(
                name=name,
                left=files["left"][i],
                right=files["right"][i],
                combined=combined,
                target=files["target"][i],
                scene=labels[i],
            )
        )
    return records


def _pairs_in_flat_folder(folder: Path) -> list[DPRecord]:
    lefts: dict[str, Path] = {}
    rights: dict[str, Path] = {}
    for path in list_images(folder):
        name, view = split_view_suffix(path.stem)
        if view is not None:
            (lefts if view == "left" else rights)[name] = path
    unpaired = sorted(set(lefts) ^ set(rights))
    if unpaired:
        name = unpaired[0]
        missing = VIEW_SUFFIXES["right" if name in lefts else "left"]
        raise DataError(
            f"'{name}' has no {missing} partner ({len(unpaired)} unpaired in all)",
            folder / f"{name}{missing}.png",
            "every *_L.png needs a matching *_R.png",
        )
    return [DPRecord(name=n, left=lefts[n], right=rights[n]) for n in sorted(lefts)]


def index_pixel(root: str | Path, split: str = "test") -> tuple[list[DPRecord], str]:
    """Left/right records of a PIXEL-style folder and the layout name that was found."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            "PIXEL root does not exist or is not a folder",
            root,
            "check the path to the PIXEL folder",
        )
    for base in (root, root / "dd_dp_dataset_pixel"):
        left, right = base / f"{split}_l" / "source", base / f"{split}_r" / "source"
        if left.is_dir() or right.is_dir():
            lefts = _images_or_error(left, "left", split)
            rights = _images_or_error(right, "right", split)
            layout = "official"
            break
        left, right = base / "inputL", base / "inputR"
        if left.is_dir() or right.is_dir():
            lefts = _images_or_error(left, "left", split)
            rights = _images_or_error(right, "right", split)
            layout = "restormer"
            break
    else:
        records = _pairs_in_flat_folder(root)
        if not records:
            raise DataError(
                "no DP pairs found (no {split}_l/source, no inputL, no *_L.png/*_R.png files)",
                root,
                "point to a folder of DP pairs; see README, section Data",
            )
        return records, "pairs"
    if len(lefts) != len(rights):
        raise DataError(
            f"{len(lefts)} left views but {len(rights)} right views",
            root,
            "every left view needs its right view",
        )
    records = [
        DPRecord(name=sample_name(lp, "left"), left=lp, right=rp)
        for lp, rp in zip(lefts, rights, strict=True)
    ]
    return records, layout


def _has_pixel_views(root: Path, split: str) -> bool:
    """Whether ``root`` holds left/right views in one of PIXEL's layouts (even broken ones)."""
    for base in (root, root / "dd_dp_dataset_pixel"):
        for name in (f"{split}_l", f"{split}_r", "inputL", "inputR"):
            if (base / name).is_dir():
                return True
    return any(split_view_suffix(path.stem)[1] is not None for path in list_images(root))


def detect_kind(root: str | Path, split: str = "test") -> str:
    """``"dpdd"`` or ``"pixel"``: the kind of DP dataset ``root`` holds, judged by its folders.

    DPDD: a tree of either layout with a combined-view folder in some split. PIXEL: left and
    right views of ``split`` in one of PIXEL's layouts, or ``*_L``/``*_R`` files. Raises a
    :class:`DataError` naming every layout looked for when ``root`` does not exist or holds
    none of them, rather than one kind's error for another kind's data.
    """
    root = Path(root).expanduser()
    looked_for = "; ".join(KNOWN_LAYOUTS)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"dataset root {problem}", root, f"check the path; a root holds one of: {looked_for}"
        )
    try:
        base, layout = resolve_dpdd_root(root)
    except DataError:
        pass
    else:
        if any(LAYOUTS[layout](base, split_)["combined"].is_dir() for split_ in SPLITS):
            return "dpdd"
    if _has_pixel_views(root, split):
        return "pixel"
    raise DataError(
        "matches no known dataset layout", root, f"point to a folder in one of: {looked_for}"
    )


def is_synthetic_tree(root: str | Path | None) -> bool:
    """Whether ``root`` was written by ``dpdeblur-data synth`` (holds :data:`SYNTHETIC_MARKER`)."""
    return root is not None and (Path(str(root)).expanduser() / SYNTHETIC_MARKER).is_file()
