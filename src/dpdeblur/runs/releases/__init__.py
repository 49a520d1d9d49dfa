"""The authors' released weights: one module per release format, each mapping the
release's tensors onto this package's model, checked entry by entry."""
