"""The run directory and everything that reads or writes it.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.json`` (final means,
protocol, status), ``{val,test}_images.csv`` (one row per image), ``checkpoints/`` and
``panels/``. This layer writes and reads those files, finds runs (the last, the best, by
experiment), and loads any checkpoint the package can meet (ours, converted, the authors'
released files). Plain torch and omegaconf: no Lightning, no Hydra app.
"""
