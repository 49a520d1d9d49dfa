"""Research tooling, as a library: benchmarks (timings, memory, MAC counts), the papers'
tables rebuilt from run directories, figures, and the planner behind
``make reproduce-table``. The console scripts in :mod:`dpdeblur.cli` drive it; nothing in
the training or inference layers imports it.
"""
