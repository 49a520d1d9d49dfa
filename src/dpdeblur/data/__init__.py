"""Data layer: 16-bit image I/O, DPDD / PIXEL / synthetic datasets, transforms, DataModule."""
