"""The union mount: options (:mod:`.options`), the union namespace (:mod:`.union`), globs over it
(:mod:`.globs`), the ``hybrid://`` fsspec filesystem (:mod:`.filesystem`) and logical -> physical
resolution for engines outside this process (:mod:`.resolver`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_hybrid.mount.union import FileChangedError, HybridMount

__all__ = ["FileChangedError", "HybridMount"]


def __getattr__(name: str) -> Any:
    """The union namespace on first use: importing :mod:`.options` or :mod:`.globs` does not load it."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.union"), name)
    globals()[name] = value
    return value
