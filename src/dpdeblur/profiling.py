"""Measurement helpers shared by benchmarks and tests."""

from __future__ import annotations

from collections.abc import Callable


def cpu_peak_bytes(run: Callable[[], object]) -> int:
    """Most bytes held at once by tensors allocated while ``run()`` executes (CPU), from
    ``torch.profiler``'s allocation events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak
