"""The httpfs set-up and checks that need no server: secrets as SQL, request URLs mapped to targets, which DuckDB
errors make a query run again through the bridge, and which stores httpfs is not offered."""

from __future__ import annotations

import duckdb
import pytest

from airflow_hybrid.query.duckdb_engine import _httpfs_failure
from airflow_hybrid.query.duckdb_s3 import (
    HttpfsAccess,
    S3Secret,
    S3Target,
    _bucket_key,
    httpfs_extension_path,
)
from airflow_hybrid.stores.local import LocalStore

TARGET = S3Target("lake-bucket", "tpcds/store sales/part 0.parquet", 10, "abc", "tpcds/store sales/part 0.parquet")


def secret(**kwargs) -> S3Secret:
    values = dict(scope="s3://lake-bucket/tpcds/", region="eu-west-1", endpoint="127.0.0.1:9000", url_style="path",
                  use_ssl=False, verify=True, key_id="AKIA'KEY", secret="se'cret", session_token=None)
    return S3Secret(**{**values, **kwargs})


def test_the_secret_statement_escapes_and_creates_a_scoped_temporary_secret():
    statement = secret().statement("hybrid_s3_0")
    assert statement.startswith("CREATE OR REPLACE TEMPORARY SECRET hybrid_s3_0 (TYPE s3, ")
    assert "KEY_ID 'AKIA''KEY'" in statement and "SECRET 'se''cret'" in statement
    assert "SCOPE 's3://lake-bucket/tpcds/'" in statement and "USE_SSL false" in statement
    assert "SESSION_TOKEN" not in statement
    assert "se'cret" not in repr(secret()) and "AKIA" not in repr(secret())


def test_duckdb_takes_the_secret():
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute(f"LOAD '{httpfs_extension_path()}'")
        con.execute(secret(session_token="tok").statement("s"))
        (scope,) = con.execute("SELECT scope FROM duckdb_secrets() WHERE name = 's'").fetchone()
        assert scope == ["s3://lake-bucket/tpcds/"]
    finally:
        con.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/lake-bucket/tpcds/store%20sales/part%200.parquet",  # path style
        "https://lake-bucket.s3.eu-west-1.amazonaws.com/tpcds/store%20sales/part%200.parquet",  # virtual host
    ],
)
def test_logged_urls_map_to_their_target(url):
    by_path = {(TARGET.bucket, TARGET.key): TARGET}
    assert _bucket_key(url, by_path) == (TARGET.bucket, TARGET.key)
    assert _bucket_key(url.replace("part%200", "part%201"), by_path) is None


def test_which_duckdb_errors_rerun_the_query_through_the_bridge():
    targets = [TARGET]
    gone = duckdb.HTTPException(f"HTTP Error: HTTP GET error reading '{TARGET.uri}' in region 'x' (HTTP 404 Not Found)")
    assert _httpfs_failure(gone, targets) == TARGET.uri
    changed = duckdb.IOException('ETag on reading file "s3://other/k" was initially "a" and now it returned "b"')
    assert _httpfs_failure(changed, targets) == "an S3 file"
    assert _httpfs_failure(duckdb.BinderException("column x not found"), targets) is None
    assert _httpfs_failure(gone, []) is None  # no httpfs in the query: not ours to retry


def test_httpfs_is_offered_only_s3_stores(tmp_path):
    access = HttpfsAccess()
    assert access.unavailable is None  # the wheel is a runtime dependency
    assert access.target(LocalStore(str(tmp_path)), "a.parquet", 1, "e", "a.parquet") is None
    assert not access.used
