"""Full-resolution inference: tiled, blended, on any device (``dpdeblur-deblur``).

``deblur`` (also ``dpdeblur.deblur``) is the notebook entry point; the modules each do one
job: ``margins`` (receptive fields), ``tiling`` (tile grids, blending weights), ``memory``
(budget, tile size), ``engine`` (running a model), ``views`` (orientation, channels),
``sources`` / ``outputs`` (the command line's files), ``api``. Checkpoints are loaded by
:func:`dpdeblur.runs.checkpoints.load_model`.
"""

from dpdeblur.inference.api import deblur

__all__ = ["deblur"]
