"""Benchmarks behind ``dpdeblur-bench all`` (``make bench``): what each model costs to run.

- :mod:`~dpdeblur.benchmarks.machine`: which machine and settings a figure came from.
- :mod:`~dpdeblur.benchmarks.timing`: forward, forward+backward and training-step times.
- :mod:`~dpdeblur.benchmarks.fullres`: full-resolution inference time and peak memory.
- :mod:`~dpdeblur.benchmarks.precision`: GPU variants (autocast, ``channels_last``,
  ``torch.compile``) and the operators that stay in float32 under autocast.
- :mod:`~dpdeblur.benchmarks.suite`: the plan (which model gets which measurement) and the
  run that writes ``bench.json``; :mod:`~dpdeblur.benchmarks.report` renders ``bench.md``.
"""
