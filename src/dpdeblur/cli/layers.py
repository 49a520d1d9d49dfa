"""``python -m dpdeblur.cli.layers``: print the import graph between the package's layers
(``make import-graph``), as Mermaid for docs/design.md or as plain text."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpdeblur.cli.layers", description=__doc__)
    parser.add_argument("--format", choices=("mermaid", "text"), default="mermaid")
    args = parser.parse_args(argv)
    try:
        # grimp comes with the dev extra (import-linter); users of the package never need it.
        from dpdeblur.research.import_graph import layer_edges, render_mermaid, render_text
    except ModuleNotFoundError as err:
        print(f"error: {err.name} is not installed; run: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    edges = layer_edges()
    print(render_mermaid(edges) if args.format == "mermaid" else render_text(edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
