"""S3 through the amazon provider: the store, its options, ranged reads, streamed multipart uploads."""

from airflow_hybrid.stores.s3.multipart import OpenUpload, multipart_etag
from airflow_hybrid.stores.s3.options import MiB, S3Options, parse_size
from airflow_hybrid.stores.s3.store import S3Store

__all__ = ["MiB", "OpenUpload", "S3Options", "S3Store", "multipart_etag", "parse_size"]
