"""moto's S3 server on a free loopback port, reached through a real Airflow connection (``aws_moto``).

A plugin of ``tests/conftest.py``: ``moto_endpoint`` (session: one server for the whole run), ``s3_client``
(session) and ``bucket`` (a fresh one per test). Request them by name; never import them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import types
import uuid

import pytest

AWS_CONN_ID = "aws_moto"


def _ensure_moto_crc32c() -> None:
    """moto computes CRC32C with the optional ``crc32c`` package and silently falls back to plain CRC32
    without it; give it a correct implementation (awscrt's) when the package is missing."""
    try:
        import crc32c  # noqa: F401
    except ImportError:
        from importlib.machinery import ModuleSpec

        from awscrt import checksums

        shim = types.ModuleType("crc32c")
        shim.__spec__ = ModuleSpec("crc32c", None)  # moto probes it with importlib.util.find_spec
        shim.crc32c = lambda data, value=0: checksums.crc32c(data, value)
        sys.modules["crc32c"] = shim


def client(endpoint: str, service: str = "s3", **config):
    """A plain boto3 client of ``service`` on a moto (or devstack) server, with moto's test credentials;
    ``config``: botocore ``Config`` options (e.g. ``retries``)."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(**config) if config else None)


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    _ensure_moto_crc32c()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}")
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    })
    yield endpoint
    if previous is None:
        os.environ.pop(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", None)
    else:
        os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = previous
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_endpoint):
    """A plain boto3 client on the moto server, for arranging and inspecting buckets in tests."""
    return client(moto_endpoint)


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket per test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name
