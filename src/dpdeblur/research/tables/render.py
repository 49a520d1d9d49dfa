"""A table's rows (:func:`dpdeblur.research.tables.collect_rows`) as Markdown, CSV or LaTeX.

Ours beside the paper's number and the difference (ours - paper) for every metric, the
spread over seeds (sample standard deviation) when a row has several, our indoor/outdoor
means when the runs have them, and each row's status: a row not run, failed or unfinished
is shown as such, never dropped. A comparison of runs without a paper
(:mod:`dpdeblur.research.tables.compare`) has the same columns less the paper's.

:func:`render_tables` is ``dpdeblur-table``: the paper tables the runs were made for, and
a comparison of every other run, or of all runs with ``compare=True``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from dpdeblur.errors import DpdeblurError
from dpdeblur.research.tables.collect import (
    STATUS_NOT_IMPLEMENTED,
    STATUS_NOT_RUN,
    STATUS_OK,
    collect_table,
    tables_of,
)
from dpdeblur.research.tables.compare import COMPARISON, compare_table
from dpdeblur.research.tables.reference import TableSpec, load_table
from dpdeblur.runs.find import find_runs

FORMATS = ("md", "csv", "tex")
METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "mae": "MAE", "lpips": "LPIPS"}
DECIMALS = {"psnr": 2}  # the papers' precision; 3 for the others
DASH = "–"
NOTE_CHARS = 100


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _decimals(key: str) -> int:
    return DECIMALS.get(key.split("_")[0], 3)


def number(value: Any, key: str, signed: bool = False) -> str | None:
    if value is None:
        return None
    return f"{value:+.{_decimals(key)}f}" if signed else f"{value:.{_decimals(key)}f}"


def scenes_in(rows: list[dict], table: TableSpec) -> list[str]:
    """Scene labels that have columns in ``rows`` (``indoor``, ``outdoor``)."""
    prefix = table.metrics[0] + "_"
    suffixes = [k[len(prefix) :] for k in (rows[0] if rows else ()) if k.startswith(prefix)]
    return [s for s in suffixes if s not in ("std", "paper", "delta")]


def _ours(row: dict, metric: str, plus_minus: str) -> str | None:
    mean = number(row.get(metric), metric)
    std = number(row.get(f"{metric}_std"), metric)
    return f"{mean}{plus_minus}{std}" if mean is not None and std is not None else mean


def _paper(row: dict, metric: str) -> str | None:
    value = number(row.get(f"{metric}_paper"), metric)
    return value if value is not None else row.get("paper_note")


def _note(row: dict) -> str:
    parts = [p for p in (row.get("note"), row.get("error")) if p]
    text = "; ".join(parts)
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 3] + "..."


def _cells(row: dict, table: TableSpec, scenes: list[str], plus_minus: str) -> list[str | None]:
    cells: list[str | None] = [row["label"], row["status"], str(row["n"])]
    for metric in table.metrics:
        cells.append(_ours(row, metric, plus_minus))
        if table.has_paper:
            cells += [_paper(row, metric), number(row.get(f"{metric}_delta"), metric, signed=True)]
    for metric in table.metrics:
        cells += [number(row.get(f"{metric}_{scene}"), metric) for scene in scenes]
    return cells


def _header(table: TableSpec, scenes: list[str], delta: str) -> list[str]:
    header = ["Row" if table.has_paper else "Setting", "Status", "n"]
    for metric in table.metrics:
        header += (
            [metric_name(metric), "paper", delta] if table.has_paper else [metric_name(metric)]
        )
    for metric in table.metrics:
        header += [f"{metric_name(metric)} {scene}" for scene in scenes]
    return header


def _caption_lines(table: TableSpec, split: str) -> list[str]:
    if not table.has_paper:
        return [
            f"Ours: the {split} split of each run's best-on-validation checkpoint; one row per "
            "setting, named by the overrides that differ; +- is the standard deviation over "
            "seeds (n)."
        ]
    source = table.source
    paper = source.get("paper", "the paper")
    where = f"Table {source['table']}" if source.get("table") else ""
    lines = [f"Paper: {paper}{', ' + where if where else ''}."]
    if source.get("data"):
        lines.append(f"Paper's data: {source['data']}; protocol: {source.get('protocol', '?')}.")
    lines.append(
        f"Ours: the {split} split of each run's best-on-validation checkpoint; "
        "delta = ours - paper; +- is the standard deviation over seeds (n)."
    )
    return lines


def to_markdown(rows: list[dict], table: TableSpec, split: str = "test") -> str:
    scenes = scenes_in(rows, table)
    header = [*_header(table, scenes, "Δ"), "Protocol", "Data", "Note"]
    lines = [f"### {table.title}", "", *_caption_lines(table, split), ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 5) + ["---"] * 3) + "|")
    for row in rows:
        cells = _cells(row, table, scenes, " ± ")
        cells += [row.get("protocol"), row.get("data"), _note(row)]
        text = [(c if c not in (None, "") else DASH).replace("|", "\\|") for c in cells]
        lines.append("| " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def _format_csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(round(value, 6))
    return "" if value is None else value


def to_csv(rows: list[dict], table: TableSpec, split: str = "test") -> str:
    buffer = io.StringIO()
    fields = list(rows[0].keys()) if rows else []
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_csv_value(v) for k, v in row.items()})
    return buffer.getvalue()


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(rows: list[dict], table: TableSpec, split: str = "test") -> str:
    scenes = scenes_in(rows, table)
    per_metric = 3 if table.has_paper else 1
    align = "ll r" + (" " + "r" * per_metric) * len(table.metrics)
    align += (" " + "r" * len(scenes)) * len(table.metrics)
    lines = [f"% {line}" for line in (table.title, *_caption_lines(table, split))]
    lines += [f"\\begin{{tabular}}{{{align.replace(' ', '')}}}", "\\toprule"]
    top = ["Row" if table.has_paper else "Setting", "Status", "$n$"]
    top += [f"\\multicolumn{{{per_metric}}}{{c}}{{{metric_name(m)}}}" for m in table.metrics]
    top += [
        f"\\multicolumn{{{len(scenes)}}}{{c}}{{{metric_name(m)}}}" for m in table.metrics if scenes
    ]
    lines.append(" & ".join(top) + " \\\\")
    sub = ["", "", ""] + (["ours", "paper", "$\\Delta$"] if table.has_paper else ["ours"]) * len(
        table.metrics
    )
    sub += [tex_escape(s) for s in scenes] * len(table.metrics)
    lines.append(" & ".join(sub) + " \\\\")
    lines.append("\\midrule")
    problems = []
    for row in rows:
        cells = _cells(row, table, scenes, " $\\pm$ ")
        text = []
        for i, cell in enumerate(cells):
            if cell in (None, ""):
                text.append("--")
            elif i >= 3 and cell[:1] in "+-" and cell[1:2].isdigit():
                text.append(f"${cell}$")
            else:
                text.append(cell if "$\\pm$" in cell else tex_escape(cell))
        lines.append(" & ".join(text) + " \\\\")
        if row["status"] != STATUS_OK and (row.get("error") or row.get("note")):
            problems.append(f"% {row['row']}: {row['status']}: {_note(row)}")
    lines += ["\\bottomrule", "\\end{tabular}", *problems]
    return "\n".join(lines) + "\n"


def render(rows: list[dict], table: TableSpec, fmt: str = "md", split: str = "test") -> str:
    """``rows`` of ``table`` as ``md``, ``csv`` or ``tex`` text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {"md": to_markdown, "csv": to_csv, "tex": to_latex}[fmt](rows, table, split)


def _unmatched_note(runs: int) -> str:
    return (
        f"None of the {runs} runs given is a row of this table (rows are matched on "
        "`row` and `task_name`, which the table's sweep sets); to compare the runs with "
        "each other, run dpdeblur-table without --table."
    )


def render_tables(
    runs_paths: list[Path],
    tables: list[str] | None = None,
    fmt: str = "md",
    split: str = "test",
    protocol: str | None = None,
    compare: bool = False,
) -> str:
    """The runs at ``runs_paths`` as tables, rendered as ``fmt`` (md, csv or tex) from the
    ``split`` scores; ``protocol`` keeps only runs scored so.

    With ``tables``: those paper tables. Otherwise the paper tables the runs were made for
    (their ``table`` key), and one comparison of the other runs, a row per setting
    (:func:`~dpdeblur.research.tables.compare.compare_table`); ``compare`` puts every run
    in the comparison instead.
    """
    runs = find_runs(runs_paths)
    names = list(tables or ([] if compare else tables_of(runs)))
    loose = [] if tables else [r for r in runs if compare or not r.config.get("table")]
    parts = [*names, *([COMPARISON] if loose else [])]
    if fmt == "csv" and len(parts) > 1:
        raise DpdeblurError(
            f"the runs make several tables ({', '.join(parts)}); CSV holds one",
            runs_paths[0],
            "pass --table NAME for one paper table, or --compare for one comparison of all runs",
        )
    texts = []
    for name in names:
        spec = load_table(name)
        rows = collect_table(runs, spec, split=split, protocol=protocol)
        text = render(rows, spec, fmt, split)
        unmatched = all(r["status"] in (STATUS_NOT_RUN, STATUS_NOT_IMPLEMENTED) for r in rows)
        if unmatched and fmt != "csv":
            text += ("\n" if fmt == "md" else "% ") + _unmatched_note(len(runs)) + "\n"
        texts.append(text)
    if loose:
        spec, rows = compare_table(loose, split=split, protocol=protocol)
        texts.append(render(rows, spec, fmt, split))
    return "\n".join(texts)
