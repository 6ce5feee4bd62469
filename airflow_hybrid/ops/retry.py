"""The one retry classification: which errors another attempt may get past."""

from __future__ import annotations

from airflow_hybrid.exceptions import SourceChangedError, TransferError
from airflow_hybrid.stores.base import StoreError

#: Errors a later attempt may get past (5xx after the store's own retries, dropped connections, a failed copy).
TRANSIENT_ERRORS = (StoreError, TransferError, ConnectionError, TimeoutError)
#: Errors another attempt cannot fix: a changed or missing source, a refused path, bad input.
PERMANENT_ERRORS = (SourceChangedError, FileNotFoundError, PermissionError, IsADirectoryError, ValueError)


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed where ``error`` failed (the one retry classification)."""
    return isinstance(error, TRANSIENT_ERRORS) and not isinstance(error, PERMANENT_ERRORS)
