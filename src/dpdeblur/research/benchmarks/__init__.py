"""Benchmarks: what each model costs to run, and where the time and memory go.

Library code only, one module per benchmark; ``dpdeblur-bench`` (:mod:`dpdeblur.cli.bench`)
parses arguments and calls these.

- :mod:`~dpdeblur.research.benchmarks.suite`: ``dpdeblur-bench all`` (``make bench``): the
  plan (which model gets which measurement) and the run that writes ``bench.json``;
  :mod:`~dpdeblur.research.benchmarks.report` renders ``bench.md``.
- :mod:`~dpdeblur.research.benchmarks.macs`: parameters and MACs, op by op (``cost``).
- :mod:`~dpdeblur.research.benchmarks.timing`: forward, forward+backward and training-step times.
- :mod:`~dpdeblur.research.benchmarks.fullres`: full-resolution inference time and peak memory
  (``fullres``).
- :mod:`~dpdeblur.research.benchmarks.precision`: GPU variants (autocast, ``channels_last``,
  ``torch.compile``) and the operators that stay in float32 under autocast.
- :mod:`~dpdeblur.research.benchmarks.cpu_training`: a CPU training step by memory layout and
  precision (``cpu-train``).
- :mod:`~dpdeblur.research.benchmarks.data`: data-loader throughput, PNG vs the ``.npy`` cache
  (``data``).
- :mod:`~dpdeblur.research.benchmarks.profile`: profiles of a training step and of the data
  path (``profile train-step``, ``profile data``).
- :mod:`~dpdeblur.research.benchmarks.correlation`: the correlation kernels' time inside a
  model and the layer's peak memory (``profile correlation``, ``correlation-memory``).
- :mod:`~dpdeblur.research.benchmarks.tiles`: whole vs tiled deblurring (``deblur-tiles``).
- :mod:`~dpdeblur.research.benchmarks.figures`: PSNR against size, per-image gains
  (``figures``).
- :mod:`~dpdeblur.research.benchmarks.selection`: model names, building a model, the device.
- :mod:`~dpdeblur.research.benchmarks.process`: this process's memory, and measurements in a
  fresh process.

Machine facts (which machine and settings a figure came from) are :mod:`dpdeblur.hardware`.
"""
