"""HDFS through WebHDFS: the store, its connection (TLS, HA namenodes, Kerberos), ranged reads, HDFS checksums."""

from airflow_hybrid.stores.hdfs.checksum import BYTES_PER_CRC, DEFAULT_BLOCK_SIZE, HdfsFileChecksum
from airflow_hybrid.stores.hdfs.client import WebHdfsConnection, WebHdfsRemoteError
from airflow_hybrid.stores.hdfs.store import HdfsStore

__all__ = [
    "BYTES_PER_CRC",
    "DEFAULT_BLOCK_SIZE",
    "HdfsFileChecksum",
    "HdfsStore",
    "WebHdfsConnection",
    "WebHdfsRemoteError",
]
