"""Fixtures of the gateway's integration tests: a union mount of real servers (HDFS on the devstack's WebHDFS
server, S3 on its moto server) with a cache, served by the gateway on a real uvicorn server on a free loopback
port, and clients signing with the access keys of a real Airflow connection."""

from __future__ import annotations

import io
import json
import uuid

import boto3
import pytest
from botocore.config import Config

from airflow_hybrid.gateway.config import GatewayConfig
from airflow_hybrid.gateway.server import BackgroundGateway
from airflow_hybrid.mount import HybridMount

MOUNT = "gw_lake"
KEYS_CONN = "gw_keys"
WRITER = ("AKIDGATEWAYWRITER", "writer-secret-0123456789")
READER = ("AKIDGATEWAYREADER", "reader-secret-0123456789")


@pytest.fixture
def lake_env(hdfs_server, monkeypatch, tmp_path):
    """``AIRFLOW_CONN_*`` of a mount with its own roots (hdfs:///tmp/gw-<id>, s3://hybrid-lake/gw-<id>, read s3
    then hdfs, create s3) and a cache, and of the gateway's keys (a writer as login/password, a read-only key
    in the extras)."""
    from airflow_hybrid.devstack.stack import airflow_env

    unique = f"gw-{uuid.uuid4().hex[:8]}"
    conns = hdfs_server.connections(mount_conn_id=MOUNT, hdfs_root=f"/tmp/{unique}", s3_prefix=unique,
                                    cache_dir=tmp_path / "cache")
    conns[KEYS_CONN] = {"conn_type": "aws", "login": WRITER[0], "password": WRITER[1],
                        "extra": {"read_only": False, "keys": {READER[0]: {"secret": READER[1]}}}}
    for name, value in airflow_env(conns).items():
        monkeypatch.setenv(name, value)
    return conns


@pytest.fixture
def lake(lake_env):
    """The mount as the tests arrange it (members written directly), separate from the gateway's own."""
    mount = HybridMount.from_conn_id(MOUNT)
    yield mount
    mount.close()


@pytest.fixture
def gateway(lake_env, tmp_path):
    """The gateway over the mount, its keys read from the connection, on 127.0.0.1 and a free port."""
    config = GatewayConfig.from_connection([MOUNT], KEYS_CONN, port=0, spool_dir=tmp_path / "spool")
    with BackgroundGateway(config) as server:
        yield server


def s3_client(endpoint: str, key: tuple[str, str] | None = WRITER, verify: str | None = None, **config):
    """A boto3 client of the gateway (SigV4, path style); ``key=None``: unsigned; ``verify``: a CA bundle."""
    from botocore import UNSIGNED

    options = {"signature_version": UNSIGNED if key is None else "s3v4", "s3": {"addressing_style": "path"},
               "retries": {"max_attempts": 1}, **config}
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=(key or ("x", "x"))[0], aws_secret_access_key=(key or ("x", "x"))[1],
                        config=Config(**options), verify=verify)


@pytest.fixture
def s3(gateway):
    return s3_client(gateway.endpoint)


def put(mount: HybridMount, member: str, path: str, data: bytes) -> None:
    mount.members[member].write(path, io.BytesIO(data))


def served_mount(gateway: BackgroundGateway) -> HybridMount:
    return gateway.app.state.gateway.mounts[MOUNT]


def dumps(value) -> str:
    return json.dumps(value)
