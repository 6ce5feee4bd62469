"""Under-stores: one module per storage system, all implementing :class:`~airflow_hybrid.stores.base.Store`."""

from airflow_hybrid.stores.base import Checksum, FileInfo, PathEscapeError, Store, StoreError, normalize_path

__all__ = ["Checksum", "FileInfo", "PathEscapeError", "Store", "StoreError", "normalize_path"]
