"""Paper tables from run directories: reference numbers, matching, rendering.

``collect_rows(run_dirs, table)`` returns one plain dict per row of a paper's table (our
means over seeds beside the paper's numbers, with each row's status); ``compare_table``
does the same for runs of no table, one row per setting (grouped by the overrides that
differ, seeds together); ``render`` turns them into Markdown, CSV or LaTeX.
``dpdeblur-table`` and ``make reproduce-table`` are built on these; runs are found and read
by :mod:`dpdeblur.runs.find` and :mod:`dpdeblur.runs.records`.
docs/reproduce.md documents the tables, the row dicts (CSV columns) and the recipes.
"""

from dpdeblur.research.tables.collect import collect_rows, collect_table, tables_of
from dpdeblur.research.tables.compare import compare_table, group_runs
from dpdeblur.research.tables.reference import RowSpec, TableSpec, list_tables, load_table
from dpdeblur.research.tables.render import FORMATS, render, render_tables

__all__ = [
    "FORMATS",
    "RowSpec",
    "TableSpec",
    "collect_rows",
    "collect_table",
    "compare_table",
    "group_runs",
    "list_tables",
    "load_table",
    "render",
    "render_tables",
    "tables_of",
]
