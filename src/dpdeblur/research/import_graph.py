"""The package's import graph at the level of its layers (the folders and top-level modules
of ``dpdeblur``), for docs/design.md and for reviewing a change's new dependencies.

Built with grimp, the graph library behind import-linter (a development dependency): every
import counts, at module top or inside a function.
"""

from __future__ import annotations

from collections import Counter

import grimp

PACKAGE = "dpdeblur"


def layer_of(module: str) -> str | None:
    """``dpdeblur.training.system`` -> ``training``; the package itself has no layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_edges(package: str = PACKAGE) -> Counter[tuple[str, str]]:
    """``(importer_layer, imported_layer) -> number of module-level import edges``."""
    graph = grimp.build_graph(package)
    edges: Counter[tuple[str, str]] = Counter()
    for module in graph.modules:
        source = layer_of(module)
        if source is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = layer_of(imported) if imported.startswith(package + ".") else None
            if target is not None and target != source:
                edges[(source, target)] += 1
    return edges


def render_mermaid(edges: Counter[tuple[str, str]]) -> str:
    """A Mermaid ``graph TD`` block; each arrow is labelled with its number of imports."""
    lines = ["graph TD"]
    for (source, target), count in sorted(edges.items()):
        lines.append(f"    {source} -->|{count}| {target}")
    return "\n".join(lines)


def render_text(edges: Counter[tuple[str, str]]) -> str:
    """One line per layer: ``training -> data (2), errors (5), ...``."""
    by_source: dict[str, list[str]] = {}
    for (source, target), count in sorted(edges.items()):
        by_source.setdefault(source, []).append(f"{target} ({count})")
    return "\n".join(f"{source} -> {', '.join(targets)}" for source, targets in by_source.items())
