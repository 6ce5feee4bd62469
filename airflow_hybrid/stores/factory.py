"""Build a store from a URI and an optional Airflow connection id."""

from __future__ import annotations

from urllib.parse import urlparse

from airflow_hybrid.stores.base import Store

SUPPORTED_SCHEMES = ("hdfs", "webhdfs", "s3", "s3a", "file", "")


def store_from_uri(uri: str, conn_id: str | None = None, options: dict | None = None) -> Store:
    """Return the store serving ``uri`` (``hdfs://``, ``s3://``, ``file://`` or a plain local path).

    :param conn_id: the Airflow connection (``webhdfs`` or ``aws``) to reach it; defaults per scheme.
    :param options: store options (e.g. Alluxio's ``alluxio-union.<member>.option.*`` values).
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("hdfs", "webhdfs"):
        from airflow_hybrid.stores.hdfs.store import HdfsStore

        return HdfsStore(uri, webhdfs_conn_id=conn_id or "webhdfs_default", options=options)
    if scheme in ("s3", "s3a"):
        from airflow_hybrid.stores.s3.store import S3Store

        return S3Store(uri, aws_conn_id=conn_id or "aws_default", options=options)
    if scheme in ("file", ""):
        from airflow_hybrid.stores.local import LocalStore

        return LocalStore(uri)
    raise ValueError(f"unsupported scheme {scheme!r} in {uri!r}; supported: hdfs://, s3://, file://")
