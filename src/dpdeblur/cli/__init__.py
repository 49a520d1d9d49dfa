"""Console scripts. Each ``main`` turns a :class:`dpdeblur.errors.DpdeblurError` into one line."""
