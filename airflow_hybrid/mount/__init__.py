"""The union mount: options (:mod:`.options`), the union namespace (:mod:`.union`), globs over it
(:mod:`.globs`), the ``hybrid://`` fsspec filesystem (:mod:`.filesystem`) and logical -> physical
resolution for engines outside this process (:mod:`.resolver`)."""

from __future__ import annotations

from airflow_hybrid.mount.union import FileChangedError, HybridMount

__all__ = ["FileChangedError", "HybridMount"]
