"""Parameters and MACs of the models behind reference points and runs.

A registry model's size comes from ``bench.json`` (``dpdeblur-bench all``) when it holds
that model at the same input size, else it is counted here (:func:`dpdeblur.research.benchmarks.macs.count_macs`,
one forward pass). A run's size is counted on the model its ``metrics.json`` describes
(constructor config), once per distinct config.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dpdeblur.errors import DpdeblurError
from dpdeblur.research.benchmarks.macs import count_macs
from dpdeblur.runs.checkpoints import model_from_config


class SizeLookup:
    """``(params, complete MACs)`` by registry name or by model config, memoised."""

    def __init__(
        self, bench: dict | None = None, size: tuple[int, int] = (256, 256), count: bool = True
    ):
        self.size = tuple(size)
        self.count = count
        self._known: dict[str, tuple[int | None, int | None]] = {}
        for entry in (bench or {}).get("models", []):
            if tuple(entry.get("size") or ()) == self.size and "complete_macs" in entry:
                self._known[json.dumps({"name": entry["model"]})] = (
                    entry.get("params"),
                    entry["complete_macs"],
                )

    @classmethod
    def from_file(cls, path: str | Path | None, **kwargs) -> SizeLookup:
        if path is None:
            return cls(None, **kwargs)
        path = Path(path)
        try:
            bench = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DpdeblurError(
                f"cannot read benchmark results ({err})", path, "run dpdeblur-bench all first"
            ) from None
        return cls(bench, **kwargs)

    def of_config(self, config: dict) -> tuple[int | None, int | None]:
        """Size of the model built from ``config`` (``{name, **constructor args}``)."""
        key = json.dumps({k: v for k, v in config.items() if k != "_target_"}, sort_keys=True)
        if key not in self._known:
            if not self.count:
                return None, None
            torch.manual_seed(0)
            model = model_from_config(config)
            report = count_macs(model, self.size)
            self._known[key] = (report.params, report.complete_macs)
        return self._known[key]

    def of_registry(self, name: str) -> tuple[int | None, int | None]:
        return self.of_config({"name": name})
