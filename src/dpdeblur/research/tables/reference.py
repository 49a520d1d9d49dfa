"""The papers' tables as data: reference numbers, their source, and the recipe per row.

One YAML file per table in ``experiments/tables/`` (``dpanet_table1`` .. ``dpanet_table4``,
``k3dn_ablation``); docs/reproduce.md describes the format. A row names the run that makes
it (``conf/row/<run>.yaml``; ``run: null`` for methods not implemented here) and how runs
are recognised (``match``: dotted keys of a run's ``config.yaml`` or ``metrics.json``).
The folder is :func:`dpdeblur.training.config.tables_dir`, where the table sweeps read
their rows too (``${dpdeblur_table_rows:<table>}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dpdeblur.errors import ConfigError
from dpdeblur.training.config import tables_dir


@dataclass(frozen=True)
class RowSpec:
    """One row of a paper's table: our run (if any) and the paper's numbers (if known)."""

    id: str
    label: str
    run: str | None
    match: dict[str, Any]
    reference: dict[str, float] | None
    reference_note: str | None = None
    paper_row: str | None = None

    @property
    def implemented(self) -> bool:
        return self.run is not None


@dataclass(frozen=True)
class TableSpec:
    """A paper's table: where its numbers come from, its metrics, its rows and its recipe."""

    name: str
    title: str
    metrics: tuple[str, ...]
    rows: tuple[RowSpec, ...]
    source: dict[str, str] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def dataset(self) -> str:
        """The dataset the paper's numbers were measured on (``source.dataset``; DPDD)."""
        return self.source.get("dataset", "dpdd")

    @property
    def has_paper(self) -> bool:
        """Whether the table sets runs beside a paper's numbers (a comparison does not)."""
        return bool(self.source.get("paper")) or any(r.reference for r in self.rows)

    @property
    def experiment(self) -> str | None:
        """The ``conf/experiment`` file whose sweep makes the rows (None: no sweep of its own)."""
        return self.recipe.get("experiment")

    @property
    def kind(self) -> str:
        """``train`` (a sweep trains every row) or ``eval`` (rows score other rows' weights)."""
        return self.recipe.get("kind", "train")

    def row(self, row_id: str) -> RowSpec:
        for row in self.rows:
            if row.id == row_id:
                return row
        raise ConfigError(
            f"table '{self.name}' has no row '{row_id}'",
            self.path,
            f"rows: {', '.join(r.id for r in self.rows)}",
        )


def list_tables(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or tables_dir()).glob("*.yaml"))


def canonical_name(name: str) -> str:
    """``dpanet-4``, ``dpanet_4`` and ``dpanet_table4`` name the same table."""
    key = name.strip().lower().replace("-", "_")
    if key.endswith(".yaml"):
        key = key[: -len(".yaml")]
    match = re.fullmatch(r"dpanet_?(?:table_?)?([1-4])", key)
    if match:
        return f"dpanet_table{match.group(1)}"
    if key in ("k3dn", "k3dn_ablations"):
        return "k3dn_ablation"
    return key


def _row(raw: dict, default_note: str | None, path: Path) -> RowSpec:
    if not isinstance(raw, dict) or "id" not in raw:
        raise ConfigError(f"a row without an id: {raw!r}", path, "give every row an `id`")
    row_id = str(raw["id"])
    run = raw.get("run", row_id)
    match = dict(raw.get("match") or {"row": run, "task_name": "train"})
    reference = raw.get("reference")
    if reference is not None and not isinstance(reference, dict):
        raise ConfigError(
            f"row '{row_id}': reference must map metrics to numbers", path, "see docs/reproduce.md"
        )
    return RowSpec(
        id=row_id,
        label=str(raw.get("label", row_id)),
        run=None if run is None else str(run),
        match=match,
        reference={k: float(v) for k, v in reference.items()} if reference else None,
        reference_note=raw.get("reference_note", default_note),
        paper_row=raw.get("paper_row"),
    )


def load_table(name_or_path: str | Path) -> TableSpec:
    """A table by name (``dpanet-4``, ``dpanet_table4``, ...) or by the path of its YAML."""
    path = Path(name_or_path)
    if not (path.suffix == ".yaml" and path.is_file()):
        directory = tables_dir()
        name = canonical_name(str(name_or_path))
        path = directory / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown table '{name_or_path}'",
                directory,
                f"known tables: {', '.join(list_tables(directory))}",
            )
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"unreadable table file ({err})", path, "fix the YAML") from err
    missing = [k for k in ("name", "title", "metrics", "rows") if not (raw or {}).get(k)]
    if missing:
        raise ConfigError(
            f"table file lacks {', '.join(missing)}", path, "see docs/reproduce.md for the format"
        )
    note = raw.get("reference_note")
    rows = tuple(_row(r, note, path) for r in raw["rows"])
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise ConfigError("two rows share an id", path, "give every row its own id")
    return TableSpec(
        name=str(raw["name"]),
        title=str(raw["title"]),
        metrics=tuple(str(m) for m in raw["metrics"]),
        rows=rows,
        source={k: str(v) for k, v in (raw.get("source") or {}).items()},
        recipe=dict(raw.get("recipe") or {}),
        path=path,
    )
