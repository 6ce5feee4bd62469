"""Lineage of the operators: ``hybrid://`` Assets for Airflow, physical datasets for OpenLineage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from airflow.sdk import Asset

from airflow_hybrid.paths import hybrid_url

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


def hybrid_asset(mount_conn_id: str, path: str) -> Asset:
    """The Asset of a logical path, ``hybrid://<mount>/<path>``."""
    return Asset(hybrid_url(mount_conn_id, path))


def openlineage_name(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a physical URI, per its naming conventions: ``s3://bucket`` +
    key, ``hdfs://namenode:port`` + absolute path, ``file`` + absolute path."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("s3", "s3a", "gs", "abfss", "wasbs"):
        return f"{'s3' if scheme == 's3a' else scheme}://{parsed.netloc}", parsed.path.lstrip("/")
    if scheme == "file" or not scheme:
        return "file", parsed.path or "/"
    return f"{scheme}://{parsed.netloc}" if parsed.netloc else scheme, parsed.path or "/"


def operator_lineage(inputs: Iterable[str], outputs: Iterable[str]) -> OperatorLineage:
    """OpenLineage inputs and outputs of physical URIs (as the common-io FileTransferOperator reports them)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[Dataset(*openlineage_name(uri)) for uri in inputs],
        outputs=[Dataset(*openlineage_name(uri)) for uri in outputs],
    )
