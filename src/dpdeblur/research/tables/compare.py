"""Runs compared without a table: one row per setting, the settings named by what differs.

``dpdeblur-train -m loss=charbonnier,mse seed=0,1`` makes four runs and two settings. A
setting is a run's resolved ``config.yaml`` less the keys that never change what is
measured (:data:`IGNORED_KEYS`: the seed, paths, loggers, names) and less the keys that
follow the seed (an experiment's ``data.synthetic.seed: ${seed}``): runs that differ only
in their seed are one row, with the mean and the sample standard deviation over seeds
(:func:`dpdeblur.research.tables.collect.row_dict`: per seed, the newest finished run).

A row is labelled by the Hydra overrides (``.hydra/overrides.yaml``) that differ between
the rows, ``loss=mse``; where overrides do not tell the rows apart (runs of different
sweeps, or made without Hydra), by the config keys that do, ``loss.terms.mse=1.0``.
The table has no paper column: nothing here is a paper's row (:func:`compare_table`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpdeblur.research.tables.collect import row_dict, scenes_of
from dpdeblur.research.tables.reference import RowSpec, TableSpec
from dpdeblur.runs.records import RunRecord

# Config keys (and the keys below them) that are not part of a run's setting.
IGNORED_KEYS = (
    "seed",
    "run_name",
    "tags",
    "ckpt_path",
    "paths",
    "hydra",
    "logger",
    "data.num_workers",
    "data.cache_dir",
)
# The metrics a comparison shows, in this order, when the runs have them.
METRICS = ("psnr", "ssim", "mae", "lpips")
# Config keys named in a label made from the config (when overrides do not tell apart).
LABEL_KEYS = 4
VALUE_CHARS = 40
COMPARISON = "comparison"


@dataclass(frozen=True)
class RunGroup:
    """Runs of one setting and the label that tells it from the others."""

    label: str
    runs: list[RunRecord]


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as ``{dotted key: value}``; lists and scalars as compact JSON text."""
    if isinstance(tree, dict) and tree:
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(tree, sort_keys=True, default=str)}


def overrides_of(run: RunRecord) -> dict[str, str]:
    """The run's Hydra overrides as ``{key: value}`` (``+``/``++`` dropped; ``~key`` deletes)."""
    found = {}
    for item in run.overrides:
        key, _, value = item.partition("=")
        if key.startswith("~"):
            key, value = key[1:], "(deleted)"
        found[key.lstrip("+")] = value
    return found


def _seed_keys(runs: list[RunRecord], flats: list[dict[str, str]]) -> set[str]:
    """Keys whose value is the run's seed in every run that has them (when those runs'
    seeds differ)."""
    seeds = [json.dumps(run.seed, default=str) for run in runs]
    follow = set()
    for key in set().union(*flats):
        having = [(flat[key], seed) for flat, seed in zip(flats, seeds, strict=True) if key in flat]
        if len({seed for _, seed in having}) > 1 and all(v == seed for v, seed in having):
            follow.add(key)
    return follow


def _own_setting(run: RunRecord) -> dict[str, str]:
    """The run's flattened config less ignored keys and values under its own directory
    (``trainer.default_root_dir``, a checkpoint callback's ``dirpath``)."""
    output_dir = run.get("paths.output_dir")
    own = [str(run.path.resolve()), *([str(output_dir)] if output_dir else [])]
    own = [d for d in own if Path(d).is_absolute() and d != Path(d).anchor]
    return {
        k: v
        for k, v in flatten(run.config).items()
        if not _ignored(k) and not any(d in v for d in own)
    }


def _settings(runs: list[RunRecord]) -> list[tuple[tuple[str, str], ...]]:
    flats = [_own_setting(run) for run in runs]
    follow_seed = _seed_keys(runs, flats)
    return [tuple(sorted((k, v) for k, v in f.items() if k not in follow_seed)) for f in flats]


def _short(value: str) -> str:
    text = value[1:-1] if value.startswith('"') and value.endswith('"') else value
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def _override_labels(groups: list[list[RunRecord]]) -> list[str]:
    merged = []
    for runs in groups:
        seen: dict[str, str] = {}
        for run in runs:
            for key, value in overrides_of(run).items():
                if not _ignored(key):
                    seen.setdefault(key, value)
        merged.append(seen)
    order = list(dict.fromkeys(k for seen in merged for k in seen))
    differ = [k for k in order if len({seen.get(k) for seen in merged}) > 1]
    return [", ".join(f"{k}={seen[k]}" for k in differ if k in seen) for seen in merged]


def _config_labels(settings: list[dict[str, str]]) -> list[str]:
    keys = sorted({k for s in settings for k in s})
    differ = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    labels = []
    for setting in settings:
        parts = [f"{k}={_short(setting.get(k, 'null'))}" for k in differ[:LABEL_KEYS]]
        more = f", +{len(differ) - LABEL_KEYS} more keys" if len(differ) > LABEL_KEYS else ""
        labels.append(", ".join(parts) + more)
    return labels


def group_runs(runs: Iterable[RunRecord]) -> list[RunGroup]:
    """The runs grouped by setting (seeds together), in the order of their first run."""
    runs = list(runs)
    by_setting: dict[tuple[tuple[str, str], ...], list[RunRecord]] = {}
    for run, setting in zip(runs, _settings(runs), strict=True):
        by_setting.setdefault(setting, []).append(run)
    groups = list(by_setting.values())
    if len(groups) == 1:
        first = groups[0][0]
        return [RunGroup(label=str(first.get("experiment_name") or first.label), runs=groups[0])]
    labels = _override_labels(groups)
    if any(not label for label in labels) or len(set(labels)) < len(labels):
        labels = _config_labels([dict(setting) for setting in by_setting])
    return [RunGroup(label, runs) for label, runs in zip(labels, groups, strict=True)]


def _metrics(runs: list[RunRecord], split: str) -> tuple[str, ...]:
    def present(metric: str) -> bool:
        for run in runs:
            value = run.means(split).get(metric)
            if isinstance(value, int | float) and math.isfinite(value):
                return True
        return False

    return tuple(m for m in METRICS if present(m)) or METRICS[:1]


def compare_table(
    runs: Iterable[RunRecord], split: str = "test", protocol: str | None = None
) -> tuple[TableSpec, list[dict[str, Any]]]:
    """A table of ``runs`` with one row per setting (:func:`group_runs`) and its rows: the
    columns of a paper table's rows (docs/reproduce.md) less the paper's."""
    given = list(runs)
    runs = [r for r in given if protocol is None or r.protocol in (None, protocol)]
    groups = group_runs(runs)
    metrics = _metrics(runs, split)
    rows = tuple(
        RowSpec(id=str(i), label=g.label, run=COMPARISON, match={}, reference=None)
        for i, g in enumerate(groups)
    )
    title = f"{len(runs)} runs in {len(groups)} setting(s), grouped by what differs"
    if len(runs) < len(given):
        title += f" ({len(given) - len(runs)} runs of other protocols left out)"
    spec = TableSpec(name=COMPARISON, title=title, metrics=metrics, rows=rows)
    scenes = scenes_of(runs, split, metrics)
    dicts = []
    for row, group in zip(rows, groups, strict=True):
        values = row_dict(spec, row, group.runs, split, scenes)
        dicts.append({k: v for k, v in values.items() if not _paper_column(k)})
    return spec, dicts


def _paper_column(key: str) -> bool:
    return key.startswith("paper") or key.endswith(("_paper", "_delta"))
