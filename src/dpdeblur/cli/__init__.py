"""Console scripts: argument parsing and Hydra entry points that call the layers below, each
``main`` turning a :class:`dpdeblur.errors.DpdeblurError` into one ``error:`` line and a
non-zero exit. Nothing imports this package; heavy imports sit inside the entry points (with
a comment) so ``--help`` answers fast."""
