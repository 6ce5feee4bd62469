"""An S3 prefix as a cache tier (moto's S3 server on loopback, reached through an Airflow connection)."""

from __future__ import annotations

import os

import pytest

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.tee import FillingReader
from airflow_hybrid.stores.local import LocalStore
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration



@pytest.fixture
def manager(tmp_path, bucket):
    config = CacheConfig.from_options(
        {
            "cache": {
                "tiers": [{"alias": "S3", "uri": f"s3://{bucket}/cache", "conn_id": AWS_CONN_ID, "quota": "64MB"}],
                "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
                "metadata_sync_interval": -1,
            }
        },
        "lake",
    )
    cache = CacheManager("lake", config, catalog=Catalog(config.catalog_url))
    yield cache
    cache.close()


def _objects(s3_client, bucket) -> dict[str, int]:
    page = s3_client.list_objects_v2(Bucket=bucket, Prefix="cache/")
    return {o["Key"]: o["Size"] for o in page.get("Contents", ())}


def test_fill_while_reading_into_an_s3_tier(tmp_path, manager, s3_client, bucket):
    (tmp_path / "src").mkdir()
    data = os.urandom(12 * 1024 * 1024 + 123)  # several multipart parts
    (tmp_path / "src" / "t" / "p.parquet").parent.mkdir()
    (tmp_path / "src" / "t" / "p.parquet").write_bytes(data)
    store = LocalStore(str(tmp_path / "src"))
    info = store.info("t/p.parquet")

    stream = manager.fill_while_reading("t/p.parquet", "hdfs", info, store.open_read("t/p.parquet"))
    assert isinstance(stream, FillingReader)
    received = bytearray()
    while chunk := stream.read(1024 * 1024):
        received += chunk
    stream.close()
    assert bytes(received) == data

    entry = manager.lookup("t/p.parquet")
    assert entry is not None and entry.tier == "S3"
    assert _objects(s3_client, bucket) == {f"cache/{entry.location}": len(data)}
    with manager.open_cached(entry, offset=len(data) - 8) as tail:
        assert tail.read() == data[-8:]

    assert manager.free(["t"]).files == 1
    assert _objects(s3_client, bucket) == {}
    assert (tmp_path / "src" / "t" / "p.parquet").exists()


def test_partial_read_leaves_no_object_and_no_upload(tmp_path, manager, s3_client, bucket):
    (tmp_path / "src").mkdir()
    data = os.urandom(11 * 1024 * 1024)
    (tmp_path / "src" / "a.bin").write_bytes(data)
    store = LocalStore(str(tmp_path / "src"))
    stream = manager.fill_while_reading("a.bin", "hdfs", store.info("a.bin"), store.open_read("a.bin"))
    assert stream.read(9 * 1024 * 1024)[:100] == data[:100]
    stream.close()
    assert manager.catalog.get("lake", "a.bin") is None
    assert _objects(s3_client, bucket) == {}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
