"""Where ``dpdeblur-deblur`` writes, and writing one result (PNG, optional panel).

``-o`` names a folder (``<folder>/<name>.png`` per pair) or, for a single pair, a ``.png``
file. Files appear atomically (:func:`dpdeblur.data.io.write_png`), and a pair whose panel
(drawn by :func:`dpdeblur.data.panels.render_panel`) cannot be written loses its result file
too, so a failed pair leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dpdeblur.data.io import write_png
from dpdeblur.data.panels import render_panel, save_panel
from dpdeblur.errors import DataError


def prepare_output(out: str | Path, pairs: int) -> tuple[Path, Path | None]:
    """``(folder, file)``: the output folder (created) and, for ``-o x.png``, the file.

    ``pairs`` is how many pairs will be written: a ``.png`` file takes only one.
    """
    out = Path(out).expanduser()
    file = None
    if out.suffix.lower() == ".png":
        if pairs != 1:
            raise DataError(
                f"-o names one .png file but the input has {pairs} pairs",
                out,
                f"pass a folder for -o (e.g. -o {out.with_suffix('')}/)",
            )
        file, out = out, out.parent
    if out.exists() and not out.is_dir():
        raise DataError("output path exists and is not a folder", out, "pass a folder for -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the output folder ({err.strerror or type(err).__name__})",
            out,
            "pass a writable -o folder",
        ) from None
    if not os.access(out, os.W_OK):
        raise DataError("output folder is not writable", out, "pass a writable -o folder")
    return out, file


def result_path(folder: Path, file: Path | None, name: str) -> Path:
    return file if file is not None else folder / f"{name}.png"


def panel_path(result: Path) -> Path:
    return result.with_name(f"{result.stem}_panel.png")


def write_result(
    path: Path,
    image: np.ndarray,
    bits: int,
    panel: list[np.ndarray] | None = None,
) -> list[Path]:
    """Write ``image`` (HxWx1 or HxWx3 float) at ``bits`` and, if given, the panel: one row
    of images (:func:`~dpdeblur.data.panels.comparison_row`), drawn in 8 bits.

    If the panel fails, the result written just before is removed and the error raised.
    """
    written = [write_png(path, image, bits=bits)]
    if panel is not None:
        try:
            written.append(save_panel(render_panel([panel]), panel_path(path)))
        except DataError:
            path.unlink(missing_ok=True)
            raise
    return written
