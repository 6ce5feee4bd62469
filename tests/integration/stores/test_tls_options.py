"""TLS settings of WebHDFS and AWS connections: read once, by one grammar.

``use_ssl: "false"`` is off for the store (``WebHDFSHook`` alone takes any non-empty text for on, so the store
reads the connection itself); ``verify: "false"`` is off for botocore (which alone would take it for a CA bundle path); turning
verification off is a WARNING in the task log; a value that is no boolean is an error naming the connection.
"""

from __future__ import annotations

import json
import logging

import airflow  # noqa: F401 - Airflow configures logging on import: before caplog captures, not during a test
import pytest

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.hdfs.client import namenode_urls, tls_extras
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.s3.store import S3Store
from tests.integration.stores.hdfs.test_store import _set_connection

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


def _hook_client_url(extras: dict) -> str:
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    return WebHDFSHook()._get_client("nn", 9870, "hdfs", None, None, extras).url


@pytest.mark.parametrize(("value", "scheme"), [("false", "http"), ("False", "http"), ("off", "http"), (0, "http"),
                                                ("true", "https"), ("YES", "https"), (True, "https")])
def test_the_namenode_url_gets_the_use_ssl_we_decided(value, scheme):
    use_ssl = tls_extras({"use_ssl": value}, "c")["use_ssl"]
    assert namenode_urls(["nn"], 9870, "hdfs", use_ssl=use_ssl) == [f"{scheme}://nn:9870/hdfs"]


def test_the_provider_alone_reads_use_ssl_false_as_on():
    """Why the store reads the connection itself rather than through ``WebHDFSHook``."""
    assert _hook_client_url({"use_ssl": "false"}).startswith("https://")


@pytest.mark.parametrize("extra", [{"use_ssl": "maybe"}, {"use_ssl": 2}, {"use_ssl": True, "verify": 7}])
def test_a_value_that_is_no_boolean_names_the_connection(extra):
    with pytest.raises(HybridConfigError, match=r"connection 'c': extra (use_ssl|verify): expected true or false"):
        tls_extras(extra, "c")


def test_use_ssl_false_as_text_reaches_a_plain_http_namenode(airflow_connections, hdfs_server, monkeypatch):
    _set_connection(monkeypatch, "webhdfs_text_off", host=hdfs_server.webhdfs_host, port=hdfs_server.webhdfs_port,
                    login=hdfs_server.user, extra={"use_ssl": "false"})
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_text_off")
    assert store.info("").is_dir
    assert store.client.url.startswith("http://")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_off_is_a_warning(tls_webhdfs, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    common = {"host": "127.0.0.1", "port": tls_webhdfs.port, "login": "hdfs"}
    _set_connection(monkeypatch, "webhdfs_unverified", **common, extra={"use_ssl": "TRUE", "verify": "off"})
    _set_connection(monkeypatch, "webhdfs_verified", **common, extra={"use_ssl": "yes", "verify": "yes"})
    with caplog.at_level(logging.WARNING, logger="airflow_hybrid.stores.hdfs"):
        unverified = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_unverified")
        assert unverified.info("").is_dir
    assert unverified.session.verify is False and unverified.client.url.startswith("https://")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "verification is OFF" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["WebHDFS connection 'webhdfs_unverified'"]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airflow_hybrid.stores.hdfs"), pytest.raises(StoreError):
        HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_verified").info("")  # self-signed: refused
    assert not [r for r in caplog.records if "verification is OFF" in r.getMessage()]


def _aws_connection(monkeypatch, conn_id: str, **extra) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": "https://127.0.0.1:1", **extra},
    }))


@pytest.mark.parametrize(("value", "verify", "warned"), [
    ("false", False, True), ("Off", False, True), (False, False, True),
    ("true", True, False), (None, None, False), ("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt", False),
])
def test_s3_verify_is_read_as_a_boolean_or_a_ca_bundle(monkeypatch, tmp_path, caplog, value, verify, warned):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    _aws_connection(monkeypatch, "aws_tls", **({} if value is None else {"verify": value}))
    with caplog.at_level(logging.WARNING, logger="airflow_hybrid.stores.s3"):
        client = S3Store("s3://bucket/prefix", aws_conn_id="aws_tls").client  # no request is made
    actual = client._endpoint.http_session._verify
    assert actual == verify if verify is not None else actual  # unset: botocore's default (on, maybe a CA bundle)
    messages = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert messages == (["AWS connection 'aws_tls': TLS certificate verification is OFF (extra verify=false); the "
                         "S3 endpoint's identity is not checked. Set verify to true or to a CA bundle path."]
                        if warned else [])


def test_s3_verify_that_is_no_boolean_names_the_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    _aws_connection(monkeypatch, "aws_bad_tls", verify=3)
    with pytest.raises(HybridConfigError, match=r"connection 'aws_bad_tls': extra verify: expected true or false"):
        _ = S3Store("s3://bucket/prefix", aws_conn_id="aws_bad_tls").client
