"""Data layer, plain torch: 16-bit image I/O, DPDD / PIXEL / synthetic datasets, transforms,
the decoded-image cache, training streams (``streams``; Lightning's DataModule is
``training.datamodule``);
what makes a DP sample valid and which way up its views go (``samples``), how view files
are named (``layout``), and the image panels every other layer draws (``panels``)."""
