"""The Store contract against every backend: a local directory, S3 on moto (the devstack's S3 server) and on
SeaweedFS, HDFS on the devstack's WebHDFS server and on Apache Hadoop.

Servers are session-scoped; each test gets a store rooted at a fresh directory or prefix of its own, reached
through a real Airflow connection (``AIRFLOW_CONN_*``). Listing pages are made small where the store or
server lets us (S3 ``page_size``, the devstack's ``list_page_size``), HDFS blocks 1 MiB (the ``blocksize`` of
created files) and S3 parts 5 MiB, so a few MiB cross several of each.
"""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_hybrid.stores.factory import store_from_uri
from airflow_hybrid.stores.hdfs.rpc import HdfsRpcStore
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.stores.s3.store import S3Store
from tests.contract.store_contract import MiB, StoreContract
from tests.seaweedfs_fixtures import SEAWEED_BUCKET

pytestmark = pytest.mark.integration

#: S3 listing page size for the contract (``ListObjectsV2`` ``MaxKeys``).
S3_PAGE = 2
#: Entries per ``LISTSTATUS_BATCH`` page on the devstack's WebHDFS server during a contract test.
DEVSTACK_PAGE = 2
#: Apache Hadoop's ``dfs.ls.limit`` default (the fixture reads the session cluster's own setting).
HADOOP_PAGE = 1000
MOTO_BUCKET = "hybrid-contract"
HDFS_OPTIONS = {"blocksize": MiB, "retry_backoff": 0.001}
S3_OPTIONS = {"part_size": "5MiB", "page_size": S3_PAGE}
#: Single puts through the AWS Common Runtime's S3 client instead of botocore.
CRT_PUTS = {**S3_OPTIONS, "put_client": "crt"}


def unique_root() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def add_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return conn_id


def hdfs_store(monkeypatch: pytest.MonkeyPatch, connection: dict):
    conn_id = add_connection(monkeypatch, "contract_webhdfs", connection)
    store = HdfsStore(f"hdfs:///tmp/{unique_root()}", webhdfs_conn_id=conn_id, options=HDFS_OPTIONS)
    store.mkdir("")
    yield store
    store.delete("", recursive=True)
    store.close()


def s3_store(monkeypatch: pytest.MonkeyPatch, connection: dict, bucket: str, options: dict = S3_OPTIONS):
    conn_id = add_connection(monkeypatch, "contract_s3", connection)
    store = S3Store(f"s3://{bucket}/{unique_root()}", aws_conn_id=conn_id, options=options)
    yield store
    store.delete("", recursive=True)
    store.close()


class TestLocalStore(StoreContract):
    supports_checksum = False  # a local directory keeps no checksum of its files

    @pytest.fixture
    def store(self, tmp_path):
        store = LocalStore(str(tmp_path / unique_root()))
        store.mkdir("")
        return store


class TestMotoS3Store(StoreContract):
    s3_options = S3_OPTIONS
    list_page_size = S3_PAGE
    supports_empty_dirs = False  # directories are key prefixes
    supports_seek = False  # a read is one ranged GetObject stream
    supports_if_absent = True  # If-None-Match: *

    @pytest.fixture
    def store(self, devstack, monkeypatch):
        devstack.ensure_bucket(MOTO_BUCKET)
        connection = devstack.connections()["aws_default"]
        yield from s3_store(monkeypatch, connection, MOTO_BUCKET, self.s3_options)


class TestMotoS3StoreCrtPuts(TestMotoS3Store):
    """moto, with the puts of bodies below a part through the CRT's S3 client (``put_client: crt``)."""

    s3_options = CRT_PUTS


class TestSeaweedS3Store(StoreContract):
    s3_options = S3_OPTIONS
    list_page_size = S3_PAGE
    supports_empty_dirs = False
    supports_seek = False
    supports_if_absent = True
    deleted_dirs_vanish = False  # its filer keeps emptied folders a while, and lists them

    @pytest.fixture
    def store(self, seaweed_s3, monkeypatch):
        yield from s3_store(monkeypatch, seaweed_s3.aws_connection(), SEAWEED_BUCKET, self.s3_options)


class TestSeaweedS3StoreCrtPuts(TestSeaweedS3Store):
    """SeaweedFS, with ``put_client: crt``."""

    s3_options = CRT_PUTS


class TestDevstackHdfsStore(StoreContract):
    list_page_size = DEVSTACK_PAGE

    @pytest.fixture
    def store(self, devstack, monkeypatch):
        previous = devstack.configure()["list_page_size"]
        devstack.configure(list_page_size=DEVSTACK_PAGE)
        try:
            yield from hdfs_store(monkeypatch, devstack.connections()["webhdfs_default"])
        finally:
            devstack.configure(list_page_size=previous)


class TestHadoopHdfsStore(StoreContract):
    list_page_size = HADOOP_PAGE

    @pytest.fixture
    def store(self, hadoop_hdfs, monkeypatch):
        self.list_page_size = int(hadoop_hdfs.properties.get("dfs.ls.limit", HADOOP_PAGE))  # a server setting
        yield from hdfs_store(monkeypatch, hadoop_hdfs.webhdfs_connection())


class TestHadoopRpcStore(StoreContract):
    """Apache Hadoop over HDFS's own RPC protocol (hdfs-native), built as a member with ``transport: rpc`` is."""

    list_page_size = HADOOP_PAGE
    supports_if_absent = True  # refused by a status request, then a rename without OVERWRITE

    @pytest.fixture
    def store(self, hadoop_hdfs):
        self.list_page_size = int(hadoop_hdfs.properties.get("dfs.ls.limit", HADOOP_PAGE))
        options = {**HDFS_OPTIONS, "transport": "rpc", "namenode": f"{hadoop_hdfs.host}:{hadoop_hdfs.rpc_port}"}
        store = store_from_uri(f"hdfs:///tmp/{unique_root()}", options=options)
        assert isinstance(store, HdfsRpcStore)
        store.mkdir("")
        yield store
        store.delete("", recursive=True)
        store.close()


class TestGatewayS3Store(StoreContract):
    """S3 through the gateway (``airflow hybrid gateway``) over a union mount of real servers: the devstack's
    WebHDFS (read second) and moto (read first, where files are created), with a cache; the store is an
    :class:`S3Store` whose Airflow ``aws`` connection points at the gateway with a writing key of its auth
    connection, so every request goes through SigV4, the gateway's routes and ``HybridMount``."""

    s3_options = S3_OPTIONS
    list_page_size = S3_PAGE
    supports_empty_dirs = False  # the gateway serves keys: mkdir through S3 does nothing, prefixes are implicit
    supports_seek = False  # a read is one ranged GetObject stream
    supports_if_absent = True  # If-None-Match: * on PutObject and CompleteMultipartUpload, checked under a key lock

    @pytest.fixture
    def store(self, devstack, monkeypatch, tmp_path):
        from airflow_hybrid.devstack.stack import airflow_env
        from airflow_hybrid.gateway.config import GatewayConfig
        from airflow_hybrid.gateway.server import BackgroundGateway

        mount, keys, writer = "gwcontract", "contract_gateway_keys", ("AKIDCONTRACTWRITER", "contract-secret-0123")
        unique = unique_root()
        conns = devstack.connections(mount_conn_id=mount, hdfs_root=f"/tmp/{unique}", s3_prefix=unique,
                                     cache_dir=tmp_path / "cache")
        conns[keys] = {"conn_type": "aws", "login": writer[0], "password": writer[1], "extra": {"read_only": False}}
        for name, value in airflow_env(conns).items():
            monkeypatch.setenv(name, value)
        config = GatewayConfig.from_connection([mount], keys, port=0, spool_dir=tmp_path / "spool")
        with BackgroundGateway(config) as gateway:
            connection = {"conn_type": "aws", "login": writer[0], "password": writer[1],
                          "extra": {"endpoint_url": gateway.endpoint, "region_name": "us-east-1",
                                    "config_kwargs": {"s3": {"addressing_style": "path"}}}}
            yield from s3_store(monkeypatch, connection, mount, self.s3_options)


class TestGatewayS3StoreCrtPuts(TestGatewayS3Store):
    """The gateway, written to with ``put_client: crt``: the CRT client's requests pass its SigV4 check."""

    s3_options = CRT_PUTS
