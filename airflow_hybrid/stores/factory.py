"""Build a store from a URI and an optional Airflow connection id."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import Store

SUPPORTED_SCHEMES = ("hdfs", "webhdfs", "s3", "s3a", "file", "")
#: Values of the HDFS option ``transport``: WebHDFS (:class:`~airflow_hybrid.stores.hdfs.store.HdfsStore`, the
#: default) or HDFS's own RPC protocol (:class:`~airflow_hybrid.stores.hdfs.rpc.HdfsRpcStore`, the ``rpc`` extra).
TRANSPORTS = ("webhdfs", "rpc")


def parse_transport(value: Any, where: str) -> str | None:
    """The HDFS option ``transport`` (``webhdfs`` or ``rpc``, any case); ``None`` when unset.

    :raises HybridConfigError: naming ``where``, the option and the value.
    """
    if value is None:
        return None
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in TRANSPORTS:
        raise HybridConfigError(f"{where}: HDFS option transport: expected webhdfs or rpc, got {value!r}")
    return text


def store_from_uri(uri: str, conn_id: str | None = None, options: dict | None = None) -> Store:
    """Return the store serving ``uri`` (``hdfs://``, ``s3://``, ``file://`` or a plain local path).

    :param conn_id: the Airflow connection (``webhdfs`` or ``aws``) to reach it; defaults per scheme.
    :param options: store options (e.g. Alluxio's ``alluxio-union.<member>.option.*`` values); for HDFS,
        ``transport`` picks WebHDFS (``webhdfs``, the default) or HDFS's RPC protocol (``rpc``).
    :raises HybridConfigError: an invalid ``transport``, naming the URI, the option and the value.
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("hdfs", "webhdfs"):
        if parse_transport((options or {}).get("transport"), uri) == "rpc":
            from airflow_hybrid.stores.hdfs.rpc import HdfsRpcStore

            return HdfsRpcStore(uri, conn_id=conn_id, options=options)
        from airflow_hybrid.stores.hdfs.store import HdfsStore

        return HdfsStore(uri, webhdfs_conn_id=conn_id or "webhdfs_default", options=options)
    if scheme in ("s3", "s3a"):
        from airflow_hybrid.stores.s3.store import S3Store

        return S3Store(uri, aws_conn_id=conn_id or "aws_default", options=options)
    if scheme in ("file", ""):
        from airflow_hybrid.stores.local import LocalStore

        return LocalStore(uri)
    raise ValueError(f"unsupported scheme {scheme!r} in {uri!r}; supported: hdfs://, s3://, file://")
