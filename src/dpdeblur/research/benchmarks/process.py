"""Memory of this process, and measurements that need a fresh process of their own.

A process's peak resident set (``ru_maxrss``) only grows, so a peak measured after other
work includes that work. :func:`run_in_fresh_process` runs one measurement in a newly
started Python interpreter (``multiprocessing``'s ``spawn``: nothing is inherited but the
environment), so the peak it reads belongs to that measurement alone.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dpdeblur.errors import DpdeblurError


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_fresh_process(
    measure: Callable[..., Any],
    *args: Any,
    env: Mapping[str, str] | None = None,
    what: str = "measurement",
) -> Any:
    """``measure(*args)`` run in a new interpreter; its return value comes back pickled.

    ``measure`` must be a module-level function. ``env`` adds variables to the new
    process's environment (only there). A :class:`~dpdeblur.errors.DpdeblurError` in the
    child is raised here as it is; any other failure becomes one naming ``what`` failed.
    """
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future = pool.submit(measure, *args)
            try:
                return future.result()
            except DpdeblurError:
                raise  # already one line for the user
            except Exception as err:
                message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                raise DpdeblurError(f"{what} failed: {message}") from err
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
