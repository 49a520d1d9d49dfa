"""Console output of the Hydra tools filtered to what a user acts on.

Left out: Lightning's advertising tips (``💡 Tip: ... litlogger``, ``litmodels``), its
TPU/HPU banners, its "Restoring states from the checkpoint" and "Seed set to" lines, a
torch deprecation notice from inside Lightning, and the LPIPS warning when its AlexNet
weights are missing (the task's summary says "LPIPS unavailable" in one line instead). The
log file of each run (``<run dir>/<job>.log``) is filtered alike; the scores are in
``metrics.json`` and the summary either way.

Lightning also prints each of its lines twice when logging is configured before it is
imported (as the Hydra tools now do): once through the handler the ``lightning`` package
adds to its logger (``INFO: ...``), once through the application's. Where the root logger
has handlers, the package's own is removed.
"""

from __future__ import annotations

import logging
import warnings

DROPPED_LINES = (
    "💡 Tip",
    "TPU available",
    "HPU available",
    "Restoring states from the checkpoint",
    "Loaded model weights from the checkpoint",
    "Seed set to",
)
FILTERED_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.trainer.connectors.logger_connector.logger_connector",
    "lightning.pytorch.trainer.connectors.callback_connector",
)
IGNORED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # torch's pytree deprecation, inside Lightning
    r".*LPIPS unavailable",  # said once, shorter, by the summary
)


class DropLines(logging.Filter):
    """Drop log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...] = DROPPED_LINES):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip().startswith(self.prefixes)


_FILTER = DropLines()


def quiet_console() -> None:
    """Install the filters (idempotent; process-wide, as logging and warnings are)."""
    if logging.getLogger().handlers:
        package = logging.getLogger("lightning")
        for handler in list(package.handlers):
            if type(handler) is logging.StreamHandler:
                package.removeHandler(handler)
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
