"""The run directory and everything that reads or writes it.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.json`` (final means,
protocol, status), ``{val,test}_images.csv`` (one row per image), ``checkpoints/`` and
``panels/``. This layer writes and reads those files, finds runs (the last, the best, by
experiment), and loads any checkpoint the package can meet (ours, converted, the authors'
released files). Plain torch and omegaconf: no Lightning, no Hydra app.

- :mod:`~dpdeblur.runs.directory`: write ``config.yaml`` and ``metrics.json``;
- :mod:`~dpdeblur.runs.records`: read one run (:class:`~dpdeblur.runs.records.RunRecord`);
- :mod:`~dpdeblur.runs.find`: find runs, the last and the best checkpoint;
- :mod:`~dpdeblur.runs.state_dict`: compare weights with a model, load them strictly;
- :mod:`~dpdeblur.runs.checkpoints`: load a model from any checkpoint, write converted weights;
- :mod:`~dpdeblur.runs.releases`: the authors' released-weights formats.
"""
