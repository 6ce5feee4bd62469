"""An S3-compatible endpoint over hybrid mounts (``airflow hybrid gateway``): one bucket per mount.

Engines outside the Airflow worker (Spark's s3a, Trino, DuckDB's httpfs, pyarrow, the AWS CLI) read one
unchanging location while files migrate between the mount's members; reads go through the mount's cache.
"""

from airflow_hybrid.gateway.app import create_app
from airflow_hybrid.gateway.config import GatewayConfig

__all__ = ["GatewayConfig", "create_app"]
