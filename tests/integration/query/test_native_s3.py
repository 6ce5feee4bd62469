"""DuckDBQuery reading the S3 files of a table with DuckDB's own httpfs (moto's S3 server on loopback, through
a real Airflow connection), and never returning what another version of a file gave.

The mount: an "hdfs" member (a local directory, standing for HDFS: read through the bridge or the local tier)
and an "s3" member on moto, read priority ``s3,hdfs``, with a local cache tier. Every answer is compared with
DuckDB over the plain Parquet files of the table as it is when the query reads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

import duckdb
import pytest

from airflow_hybrid.cache import ops as cache_ops
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.query.duckdb_engine import DuckDBQuery
from airflow_hybrid.query.duckdb_s3 import HttpfsAccess, secret_from_connection
from airflow_hybrid.stores.s3.store import S3Store
from tests.integration.moto_s3 import AWS_CONN_ID, client
from tests.parquet_parts import write_part

pytestmark = pytest.mark.integration

SQL = "SELECT k % 5 AS g, count(*) AS n, sum(v) AS total FROM sales GROUP BY g ORDER BY g"
#: a connection with credentials of its own (moto takes any), to look for them in logs and results
SECRET_CONN_ID = "aws_moto_secret"
KEY_ID, SECRET_KEY, TOKEN = "AKIAHYBRIDTESTKEY01", "hybrid-secret-Qx7-never-logged", "hybrid-token-Zk9-never-logged"


def reference(directory: Path) -> list[list]:
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{directory}/*.parquet')")
        return [list(row) for row in con.execute(SQL).fetchall()]
    finally:
        con.close()


@pytest.fixture
def secret_conn(moto_endpoint, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{SECRET_CONN_ID.upper()}", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET_KEY,
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1", "aws_session_token": TOKEN},
    }))
    return SECRET_CONN_ID


@contextlib.contextmanager
def our_logs():
    """The records of the ``airflow_hybrid`` loggers, DEBUG and up, while the block runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("airflow_hybrid")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class Lake:
    """The mount and the files of table ``t/sales`` on its members (``expected`` mirrors what it holds)."""

    def __init__(self, root: Path, bucket: str, s3_client, conn_id: str, shared_tier: bool = False) -> None:
        self.root, self.bucket, self.s3 = root, bucket, s3_client
        (root / "hdfs").mkdir(exist_ok=True)
        tier = ({"alias": "S3", "uri": f"s3://{bucket}/cache", "conn_id": conn_id, "quota": "64MB"} if shared_tier
                else {"alias": "SSD", "uri": f"file://{root}/tier-ssd", "quota": "64MB"})
        options = {
            "members": {"s3": {"uri": f"s3://{bucket}/lake", "conn_id": conn_id},
                        "hdfs": {"uri": f"file://{root}/hdfs"}},
            "priority.read": "s3,hdfs",
            "collection.create": "hdfs",
            "cache": {"tiers": [tier], "catalog_url": f"sqlite:///{root}/catalog.db", "metadata_sync_interval": 60},
        }
        self.mount = HybridMount.from_options("lake", options)
        self.expected = root / "expected"
        self.expected.mkdir(exist_ok=True)

    def put_hdfs(self, name: str, i: int, **kwargs) -> None:
        write_part(self.root / "hdfs" / "t" / "sales" / name, i, **{"rows": 400, **kwargs})
        shutil.copy(self.root / "hdfs" / "t" / "sales" / name, self.expected / name)

    def put_s3(self, name: str, i: int, **kwargs) -> None:
        path = write_part(self.root / "staging" / name, i, **{"rows": 400, **kwargs})
        self.s3.put_object(Bucket=self.bucket, Key=f"lake/t/sales/{name}", Body=path.read_bytes())
        shutil.copy(path, self.expected / name)

    def move_s3_to_hdfs(self, name: str) -> None:
        """A migration S3 -> HDFS: copied to HDFS, then removed from S3."""
        body = self.s3.get_object(Bucket=self.bucket, Key=f"lake/t/sales/{name}")["Body"].read()
        target = self.root / "hdfs" / "t" / "sales" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self.s3.delete_object(Bucket=self.bucket, Key=f"lake/t/sales/{name}")

    def query(self, cls=DuckDBQuery, **kwargs) -> DuckDBQuery:
        fs = HybridFileSystem(mounts={"lake": self.mount}, skip_instance_cache=True)
        return cls(SQL, mount_conn_id="lake", tables={"sales": "/t/sales"}, filesystem=fs, **kwargs)

    def s3_reads_through_the_bridge(self) -> int:
        return sum(1 for e in self.mount.cache.entries("t/sales") if e.source_member == "s3")


@pytest.fixture
def lake(tmp_path, bucket, s3_client):
    made = []

    def make(conn_id: str = AWS_CONN_ID, **kwargs) -> Lake:
        made.append(Lake(tmp_path, bucket, s3_client, conn_id, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.mount.close()


def test_a_table_split_between_hdfs_and_s3_reads_its_s3_files_with_httpfs(lake):
    lake = lake()
    for i in range(3):
        lake.put_hdfs(f"part-{i}.parquet", i)
    for i in range(3, 6):
        lake.put_s3(f"part-{i}.parquet", i)
    cache_ops.prefetch(lake.mount, "t/sales/part-[01].parquet", concurrency=2, progress_interval=3600)
    q = lake.query()

    result = q.run()

    assert result.preview == reference(lake.expected)
    plan = q.plans["sales"]
    assert result.details["reads"] == {"sales": {"files": 6, "local": 2, "httpfs": 3, "bridge": 1}}
    assert [s for s in plan.sources if s.startswith("s3://")] == [
        f"s3://{lake.bucket}/lake/t/sales/part-{i}.parquet" for i in range(3, 6)]
    assert "hybrid://lake/t/sales/part-2.parquet" in plan.sources
    assert q.retried is None
    lake.mount.cache.wait_for_background_loads()
    assert lake.s3_reads_through_the_bridge() == 0  # httpfs read them, not the bridge (which would fill the cache)


def test_a_table_wholly_in_s3_is_read_by_httpfs_and_credentials_stay_out_of_logs(lake, secret_conn):
    lake = lake(conn_id=secret_conn)
    for i in range(4):
        lake.put_s3(f"part-{i}.parquet", i)
    # an httpfs setting (set once it is loaded), and one that would blind the check of the versions read
    q = lake.query(settings={"http_timeout": 60, "threads": 2, "enable_logging": False})

    with our_logs() as records:
        result = q.run()

    assert result.preview == reference(lake.expected)
    assert q.plans["sales"].summary() == {"files": 4, "local": 0, "httpfs": 4, "bridge": 0}
    assert q.retried is None  # the HTTP log was kept despite the setting, and showed the listed versions
    ours = "\n".join(r.getMessage() for r in records)
    assert "4 from S3 by httpfs" in ours
    shown = ours + json.dumps(result.details) + repr(q.plans)
    assert SECRET_KEY not in shown and TOKEN not in shown


def test_an_object_rewritten_between_planning_and_reading_is_not_read_in_its_new_version(lake):
    lake = lake()
    for i in range(3):
        lake.put_s3(f"part-{i}.parquet", i)
    seen = {}

    class RewrittenMeanwhile(DuckDBQuery):
        def view_statements(self, plans=None):
            if "first" not in seen:  # planned (ETags listed), not yet read: another writer replaces part-1
                seen["first"] = [t.etag for t in plans["sales"].s3_targets]
                lake.put_s3("part-1.parquet", 1, rows=250, offset=31)
            return super().view_statements(plans)

    q = lake.query(RewrittenMeanwhile)
    result = q.run()

    # httpfs read the new version, which the listing did not name: the run was discarded and the query run
    # again with the S3 files through hybrid://, which lists again and reads the new version consistently
    assert result.preview == reference(lake.expected)
    assert q.retried is not None and "part-1.parquet" in q.retried and "ETag" in q.retried
    assert result.details["s3_retry"] == q.retried
    assert q.plans["sales"].summary() == {"files": 3, "local": 0, "httpfs": 0, "bridge": 3}


def test_a_file_moved_off_s3_while_the_query_runs_is_read_from_its_new_member(lake):
    lake = lake()
    lake.put_hdfs("part-0.parquet", 0)
    for i in (1, 2):
        lake.put_s3(f"part-{i}.parquet", i)
    moved = {}

    class MovedMeanwhile(DuckDBQuery):
        def view_statements(self, plans=None):
            if not moved:
                moved["targets"] = [t.uri for t in plans["sales"].s3_targets]
                lake.move_s3_to_hdfs("part-2.parquet")
            return super().view_statements(plans)

    q = lake.query(MovedMeanwhile)
    result = q.run()

    assert moved["targets"] == [f"s3://{lake.bucket}/lake/t/sales/part-{i}.parquet" for i in (1, 2)]
    assert result.preview == reference(lake.expected)
    assert q.retried is not None and "part-2.parquet" in q.retried
    assert "hybrid://lake/t/sales/part-2.parquet" in q.plans["sales"].sources


def test_shared_s3_tier_copies_are_read_by_httpfs(lake):
    lake = lake(shared_tier=True)
    for i in range(3):
        lake.put_hdfs(f"part-{i}.parquet", i)
    cache_ops.prefetch(lake.mount, "t/sales/*.parquet", concurrency=2, progress_interval=3600)
    q = lake.query()

    result = q.run()

    assert result.preview == reference(lake.expected)
    plan = q.plans["sales"]
    assert plan.summary() == {"files": 3, "local": 0, "httpfs": 3, "bridge": 0}
    assert all(s.startswith(f"s3://{lake.bucket}/cache/") for s in plan.sources)
    assert all(t.etag is None for t in plan.s3_targets)  # a copy's location is written once


def test_s3_native_off_and_stores_without_a_connection_read_through_the_bridge(lake):
    lake = lake()
    for i in range(2):
        lake.put_s3(f"part-{i}.parquet", i)

    q = lake.query(s3_native=False)
    assert q.run().preview == reference(lake.expected)
    assert q.plans["sales"].summary() == {"files": 2, "local": 0, "httpfs": 0, "bridge": 2}
    lake.mount.cache.wait_for_background_loads()
    lake.mount.cache.free(["t/sales"])

    ready = S3Store(f"s3://{lake.bucket}/lake", client=client(lake.mount.members["s3"].client.meta.endpoint_url))
    lake.mount.members["s3"] = ready
    q = lake.query()
    with our_logs() as records:
        result = q.run()
    assert result.preview == reference(lake.expected)
    assert q.plans["sales"].summary() == {"files": 2, "local": 0, "httpfs": 0, "bridge": 2}
    assert any("read through hybrid://" in r.getMessage() and "ready client" in r.getMessage() for r in records)
    ready.close()


def test_the_secret_follows_the_connection(secret_conn, moto_endpoint, monkeypatch):
    secret = secret_from_connection(secret_conn, "s3://bkt/lake/")
    host = moto_endpoint.split("://", 1)[1]
    assert (secret.endpoint, secret.url_style, secret.use_ssl, secret.region) == (host, "path", False, "us-east-1")
    assert (secret.key_id, secret.secret, secret.session_token) == (KEY_ID, SECRET_KEY, TOKEN)
    assert SECRET_KEY not in repr(secret) and TOKEN not in repr(secret)
    statement = secret.statement("s")
    assert "SCOPE 's3://bkt/lake/'" in statement and f"SESSION_TOKEN '{TOKEN}'" in statement

    monkeypatch.setenv("AIRFLOW_CONN_AWS_PLAIN", json.dumps({
        "conn_type": "aws", "login": "AKIAPLAIN", "password": "plain-secret",
        "extra": {"region_name": "eu-west-1", "verify": "/etc/ssl/custom-ca.pem"},
    }))
    secret = secret_from_connection("aws_plain", "s3://bkt/")
    assert (secret.endpoint, secret.url_style, secret.use_ssl, secret.region) == (None, "vhost", True, "eu-west-1")
    assert secret.verify == "/etc/ssl/custom-ca.pem" and secret.session_token is None


def test_verify_finds_an_answer_of_another_version(lake, s3_client):
    lake = lake()
    lake.put_s3("part-0.parquet", 0)
    store = lake.mount.members["s3"]
    access = HttpfsAccess()
    info = store.info("t/sales/part-0.parquet")
    good = access.target(store, "t/sales/part-0.parquet", info.size, info.etag, "t/sales/part-0.parquet")
    wrong = access.target(store, "t/sales/part-0.parquet", info.size, "0" * 32, "t/sales/part-0.parquet")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        access.configure(con)
        access.start_log(con)
        assert con.execute(f"SELECT count(*) FROM read_parquet('{good.uri}')").fetchone()[0] == 400
        assert access.verify(con, [good]) == []
        (mismatch,) = access.verify(con, [wrong])
        assert mismatch.target == wrong and info.etag in mismatch.reason
        con.execute("SET enable_logging = false")  # nothing read can be checked now: none passes
        (mismatch,) = access.verify(con, [good])
        assert "log was off" in mismatch.reason
    finally:
        con.close()
