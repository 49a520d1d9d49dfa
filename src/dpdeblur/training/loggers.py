"""Loggers: Weights & Biases that falls back to offline mode instead of failing a run.

``wandb_logger`` decides the mode once per process: with no API key (``WANDB_API_KEY``,
``~/.netrc`` or wandb's own settings) or no route to the server, it logs offline under the
run directory and says so once, with the ``wandb sync`` command that uploads it later: a
line of the ``dpdeblur`` log (a warning attributed to Hydra's instantiate, which called this,
said nothing useful about where it came from).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("dpdeblur")
_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_reachable(host: str = "api.wandb.ai", port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_wandb_mode(mode: str = "auto") -> str:
    """online | offline | disabled; ``auto`` picks online only with a key and a route."""
    env = os.environ.get("WANDB_MODE")
    if mode == "auto" and env in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    if mode != "auto":
        return mode
    if has_wandb_key() and wandb_reachable():
        return "online"
    return "offline"


def wandb_logger(
    project: str = "dpdeblur",
    save_dir: str = ".",
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    mode: str = "auto",
    **kwargs: Any,
):
    """A Lightning ``WandbLogger`` that never stops a run for want of a key or network."""
    from lightning.pytorch.loggers import WandbLogger

    resolved = resolve_wandb_mode(mode)
    os.makedirs(save_dir, exist_ok=True)
    if resolved == "offline" and mode == "auto":
        _say_once(
            f"wandb: no API key or no network, logging offline under {save_dir}/wandb; "
            f"upload later with: wandb sync {save_dir}/wandb/offline-run-*"
        )
    logger = WandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        name=name or None,
        tags=list(tags or []),
        mode=resolved,
        **kwargs,
    )
    # Lightning passes anonymous=None, which wandb answers with a deprecation warning on
    # every run ("The anonymous setting has no effect"); nothing to act on, so not passed
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger
