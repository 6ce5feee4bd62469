"""S3 stores of one Airflow connection share a boto3 client within a process (its build costs more than a warm
query's requests); an edited connection, other client settings or another process get their own."""

from __future__ import annotations

import json

from airflow_hybrid.stores.s3 import clients
from airflow_hybrid.stores.s3.store import S3Store


def _connection(monkeypatch, conn_id: str, key: str, endpoint: str = "http://127.0.0.1:9") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "aws", "login": key, "password": "secret-" + key,
         "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))


def test_stores_of_one_connection_share_a_client_and_closing_one_keeps_it(monkeypatch):
    _connection(monkeypatch, "aws_shared", "AKIDONE")
    first, second = S3Store("s3://a/x", aws_conn_id="aws_shared"), S3Store("s3://b/y", aws_conn_id="aws_shared")
    assert first.client is second.client
    first.close()
    assert second.client.list_buckets  # still a usable client
    assert S3Store("s3://a/x", aws_conn_id="aws_shared").client is second.client


def test_an_edited_connection_other_settings_and_another_process_get_their_own_client(monkeypatch):
    _connection(monkeypatch, "aws_edited", "AKIDONE")
    before = S3Store("s3://a", aws_conn_id="aws_edited").client
    assert S3Store("s3://a", aws_conn_id="aws_edited", options={"max_pool_connections": 7}).client is not before
    _connection(monkeypatch, "aws_edited", "AKIDTWO")  # rotated keys
    after = S3Store("s3://a", aws_conn_id="aws_edited").client
    assert after is not before
    assert after._request_signer._credentials.access_key == "AKIDTWO"
    monkeypatch.setattr(clients.os, "getpid", lambda: -1)  # as in a forked child
    assert S3Store("s3://a", aws_conn_id="aws_edited").client is not after


def test_a_store_given_a_client_uses_it(monkeypatch):
    given = object()
    assert S3Store("s3://a", client=given).client is given
