"""Figures behind ``dpdeblur-bench figures``: PSNR against size, per-image PSNR gains.

- :mod:`~dpdeblur.research.figures.runs`: scored runs (found and read by
  :mod:`dpdeblur.runs.find` and :mod:`dpdeblur.runs.records`) and their figure labels.
- :mod:`~dpdeblur.research.figures.references`: the papers' published PSNRs (the table data in
  ``experiments/tables/``) and the models whose sizes stand in for them.
- :mod:`~dpdeblur.research.figures.sizes`: parameters and MACs, from ``bench.json`` or counted.
- :mod:`~dpdeblur.research.figures.build`: every figure plus ``figures.json``, the plotted numbers.
- :mod:`~dpdeblur.research.figures.plots`: the matplotlib figures, saved as PNG and PDF.
"""
