"""The plugin's listener: what a process holds for the cache catalog is written before it stops.

A task's process ends with ``os._exit`` (the task runner is forked by its supervisor), which runs no
``atexit`` handler, so the cache hits still gathered by the hit writer (:mod:`airflow_hybrid.cache.hits`) are
written here, from the task runner's last lifecycle call. Nothing is imported unless the process used a cache.
"""

from __future__ import annotations

import sys
from typing import Any

from pluggy import HookimplMarker

hookimpl = HookimplMarker("airflow")


@hookimpl
def before_stopping(component: Any) -> None:
    """Write the pending cache hits of this process (a task runner, a worker, a scheduler...)."""
    hits = sys.modules.get("airflow_hybrid.cache.hits")
    if hits is not None:
        hits.flush_all()
