"""Training and evaluation with Lightning and Hydra.

The LightningModule (:mod:`~dpdeblur.training.system`), the loss terms, callbacks and
loggers, Hydra config composition, and the two tasks (:mod:`~dpdeblur.training.train`,
:mod:`~dpdeblur.training.evaluate`, sharing :mod:`~dpdeblur.training.setup`). The layers
below (models, data, metrics, runs) know nothing of Lightning; the command-line entry points in :mod:`dpdeblur.cli` call these tasks.
"""
