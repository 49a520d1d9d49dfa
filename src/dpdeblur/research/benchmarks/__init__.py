"""Benchmarks behind ``dpdeblur-bench all`` (``make bench``): what each model costs to run.

- :mod:`~dpdeblur.hardware`: which machine and settings a figure came from.
- :mod:`~dpdeblur.research.benchmarks.timing`: forward, forward+backward and training-step times.
- :mod:`~dpdeblur.research.benchmarks.fullres`: full-resolution inference time and peak memory.
- :mod:`~dpdeblur.research.benchmarks.precision`: GPU variants (autocast, ``channels_last``,
  ``torch.compile``) and the operators that stay in float32 under autocast.
- :mod:`~dpdeblur.research.benchmarks.suite`: the plan (which model gets which measurement) and the
  run that writes ``bench.json``; :mod:`~dpdeblur.research.benchmarks.report` renders ``bench.md``.
"""
