"""Where the Hydra configs live, and the resolvers they use.

The configs ship inside the wheel as ``dpdeblur/conf`` (pyproject's force-include); in an
editable install or a source checkout they are the repository's ``conf/``. Either way the
console scripts find them without path tricks, and a user's own folder can be added with
Hydra's ``--config-dir``.

The papers' tables (``experiments/tables/*.yaml``, shipped as ``dpdeblur/experiments/tables``)
are found the same way; a table sweep reads its rows from its table file through the
``${dpdeblur_table_rows:<table>}`` resolver, so a row is listed once, in the table.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from dpdeblur.errors import ConfigError

TABLES_ENV = "DPDEBLUR_TABLES"


def config_dir() -> Path:
    """Absolute path of the packaged configs, else the source checkout's ``conf/``."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if (packaged / "train.yaml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    raise FileNotFoundError(
        f"dpdeblur's Hydra configs were found neither at {packaged} nor at {checkout}; reinstall the package"
    )


def tables_dir() -> Path:
    """``$DPDEBLUR_TABLES``, else the tables shipped in the package, else the checkout's
    ``experiments/tables``."""
    env = os.environ.get(TABLES_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[1] / "experiments" / "tables",  # a wheel that ships them
        here.parents[3] / "experiments" / "tables",  # a source checkout / editable install
    ):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "the reference tables (experiments/tables/*.yaml) were not found",
        None,
        f"set {TABLES_ENV}=/path/to/dpdeblur/experiments/tables",
    )


def table_row_runs(table: str) -> list[str]:
    """The runs a table's sweep trains, in the table's order: each row's ``run``
    (``conf/row/<run>.yaml``; the row's ``id`` unless stated), leaving out rows with
    ``run: null`` (methods not implemented here). ``table`` is the file's stem."""
    path = tables_dir() / f"{table}.yaml"
    try:
        rows = (yaml.safe_load(path.read_text()) or {}).get("rows") or []
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"unreadable table file ({err})", path, "fix the YAML") from err
    runs = [row.get("run", row.get("id")) for row in rows if isinstance(row, dict)]
    return list(dict.fromkeys(str(run) for run in runs if run is not None))


_UID = secrets.token_hex(3)


def register_resolvers() -> None:
    """``${dpdeblur_uid:}``: a short random id fixed per process, so two runs started in
    the same second never share a run directory. ``${dpdeblur_table_rows:<table>}``: the
    rows of ``experiments/tables/<table>.yaml`` as one comma-separated string, the form of
    a Hydra sweep (``hydra.sweeper.params.row``)."""
    if not OmegaConf.has_resolver("dpdeblur_uid"):
        OmegaConf.register_new_resolver("dpdeblur_uid", lambda: _UID)
    if not OmegaConf.has_resolver("dpdeblur_table_rows"):
        OmegaConf.register_new_resolver(
            "dpdeblur_table_rows", lambda table: ",".join(table_row_runs(str(table)))
        )


def compose_config(
    config_name: str, overrides: list[str], output_dir: Path, log_dir: Path | None = None
):
    """A config composed in-process (no Hydra app, e.g. the demo and tests) with its run
    folder set, since ``${hydra:runtime.output_dir}`` exists only inside a Hydra app."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(log_dir or Path(output_dir).parent)
    return cfg
