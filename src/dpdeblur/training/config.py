"""Where the Hydra configs live, and the resolvers they use.

The configs ship inside the wheel as ``dpdeblur/conf`` (pyproject's force-include); in an
editable install or a source checkout they are the repository's ``conf/``. Either way the
console scripts find them without path tricks, and a user's own folder can be added with
Hydra's ``--config-dir``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import OmegaConf


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


_UID = secrets.token_hex(3)


def register_resolvers() -> None:
    """``${dpdeblur_uid:}``: a short random id fixed per process, so two runs started in
    the same second never share a run directory."""
    if not OmegaConf.has_resolver("dpdeblur_uid"):
        OmegaConf.register_new_resolver("dpdeblur_uid", lambda: _UID)


def compose_config(
    config_name: str, overrides: list[str], output_dir: Path, log_dir: Path | None = None
):
    """A config composed in-process (no Hydra app, e.g. the demo and tests) with its run
    folder set, since ``${hydra:runtime.output_dir}`` exists only inside a Hydra app."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(log_dir or Path(output_dir).parent)
    return cfg
