"""The local stack: a WebHDFS namenode and data node, an S3 server, and the shaped link between them.

The HDFS side is our own WebHDFS server by default (pure Python, no Java: the demo's), or Apache Hadoop's
NameNode and DataNode with ``hdfs="hadoop"`` (:mod:`.hadoop`; needs Java 17 and Maven), whose link is not shaped.

::

    with DevStack() as stack:  # loopback ports chosen free, data in a temporary directory
        os.environ.update(stack.airflow_env())  # AIRFLOW_CONN_* for the stack's connections
        stack.shaping.configure("s3", latency_ms=40, bandwidth=50e6)
        stack.shaping.fail_next(2, op="datanode.OPEN", kind="reset")

``python -m airflow_hybrid.devstack`` runs one in the foreground (see :mod:`.control` for the
background ``up``/``down``/``status`` used by ``airflow hybrid devstack``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.hadoop import HadoopHdfs
from airflow_hybrid.devstack.s3 import DEFAULT_REGION, S3Server
from airflow_hybrid.devstack.shaping import ControlApp, LinkShaper, Shaping
from airflow_hybrid.devstack.webhdfs import DEFAULT_PAGE_SIZE, WebHdfsServer
from airflow_hybrid.stores.hdfs.checksum import DEFAULT_BLOCK_SIZE

log = logging.getLogger(__name__)

STATE_FILE = "devstack.json"
DEFAULT_BUCKET = "hybrid-lake"
DEFAULT_USER = "hdfs"
S3_KEY = "testing"
#: The cache tiers ``airflow hybrid devstack up`` gives its mount (alias, directory under the cache dir, quota).
DEVSTACK_CACHE_TIERS = (("MEM", "mem", "64MB"), ("SSD", "ssd", "1GB"))
DEVSTACK_DEFAULT_TIER = "SSD"


def devstack_cache(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """The mount's ``cache`` section on a developer machine: a small MEM tier and a 1 GB SSD tier (both
    directories under ``cache_dir``), the SSD tier for prefetches, and a SQLite catalog beside them."""
    cache_dir = Path(cache_dir).resolve()
    return {
        "tiers": [
            {"alias": alias, "uri": (cache_dir / name).as_uri(), "quota": quota}
            for alias, name, quota in DEVSTACK_CACHE_TIERS
        ],
        "default_tier": DEVSTACK_DEFAULT_TIER,
        "catalog_url": f"sqlite:///{cache_dir / 'catalog.db'}",
        "metadata_sync_interval": 60,
        "cache_on_read": True,
    }


def devstack_connections(
    *,
    webhdfs_host: str,
    webhdfs_port: int,
    s3_endpoint: str,
    user: str = DEFAULT_USER,
    mount_conn_id: str = "onprem_union",
    bucket: str = DEFAULT_BUCKET,
    webhdfs_conn_id: str = "webhdfs_default",
    aws_conn_id: str = "aws_default",
    hdfs_root: str = "/tmp/tpcds",
    s3_prefix: str = "tpcds",
    region: str = DEFAULT_REGION,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """Airflow connection dicts (``AIRFLOW_CONN_*`` JSON) for a running stack, by connection id.

    With ``cache_dir`` the mount gets a cache (:func:`devstack_cache`), as every shipped DAG expects.
    """
    connections: dict[str, dict] = {
        webhdfs_conn_id: {"conn_type": "webhdfs", "host": webhdfs_host, "port": webhdfs_port, "login": user},
        aws_conn_id: {
            "conn_type": "aws",
            "login": S3_KEY,
            "password": S3_KEY,
            "extra": {"endpoint_url": s3_endpoint, "region_name": region},
        },
        mount_conn_id: {
            "conn_type": "hybrid_mount",
            "extra": {
                "members": {
                    "hdfs": {"uri": f"hdfs://{hdfs_root}", "conn_id": webhdfs_conn_id},
                    "s3": {"uri": f"s3://{bucket}/{s3_prefix.strip('/')}", "conn_id": aws_conn_id},
                },
                "priority.read": "s3,hdfs",
                "collection.create": "s3",
            },
        },
    }
    if cache_dir is not None:
        connections[mount_conn_id]["extra"]["cache"] = devstack_cache(cache_dir)
    return connections


def airflow_env(connections: dict[str, dict]) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` environment variables (JSON values) for ``connections``."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()}


class StackConnections:
    """The Airflow connections of a stack, from its ``webhdfs_host``, ``webhdfs_port``, ``s3_endpoint`` and
    ``user`` (shared by :class:`DevStack` and the remote :class:`~.control.DevStackClient`)."""

    webhdfs_host: str
    webhdfs_port: int
    s3_endpoint: str
    user: str

    def connections(
        self, mount_conn_id: str = "onprem_union", bucket: str = DEFAULT_BUCKET, **ids: Any
    ) -> dict[str, dict]:
        """Airflow connection dicts by id (``webhdfs_conn_id``, ``aws_conn_id``, ``hdfs_root``, ``s3_prefix``;
        ``cache_dir`` for a mount with a cache)."""
        return devstack_connections(
            webhdfs_host=self.webhdfs_host,
            webhdfs_port=self.webhdfs_port,
            s3_endpoint=self.s3_endpoint,
            user=self.user,
            mount_conn_id=mount_conn_id,
            bucket=bucket,
            **ids,
        )

    def airflow_env(self, **kwargs: Any) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables for :meth:`connections` (same arguments)."""
        return airflow_env(self.connections(**kwargs))


class DevStack(StackConnections, processes.Service):
    """WebHDFS (namenode + data node) and S3 servers in this process, on free loopback ports.

    :param data_dir: where HDFS files live (``<data_dir>/hdfs``); a temporary directory (removed on
        :meth:`stop`) when ``None``.
    :param buckets: buckets created at start (others are created on first write).
    :param list_page_size: entries per ``LISTSTATUS_BATCH`` page (HDFS's ``dfs.ls.limit``).
    :param block_size: HDFS block size reported and used for checksums.
    :param seed: seed of the fault RNG of both links.
    :param shaping: initial settings per link, e.g. ``{"s3": {"latency_ms": 40, "bandwidth": 5e7}}``.
    :param hdfs: ``"devstack"`` (our WebHDFS server) or ``"hadoop"`` (Apache Hadoop's, data in
        ``<data_dir>/hadoop``; ``block_size`` and ``list_page_size`` then keep Hadoop's test defaults).
    """

    HDFS_KINDS = ("devstack", "hadoop")

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        *,
        host: str = "127.0.0.1",
        user: str = DEFAULT_USER,
        buckets: tuple[str, ...] = (DEFAULT_BUCKET,),
        list_page_size: int = DEFAULT_PAGE_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        seed: int | None = None,
        shaping: dict[str, dict] | None = None,
        webhdfs_port: int = 0,
        datanode_port: int = 0,
        s3_port: int = 0,
        hdfs: str = "devstack",
    ) -> None:
        if hdfs not in self.HDFS_KINDS:
            raise ValueError(f"hdfs must be one of {', '.join(self.HDFS_KINDS)}, got {hdfs!r}")
        self.hdfs_kind = hdfs
        self.host = host
        self.user = user
        self.buckets = tuple(buckets)
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_data_dir = data_dir is None
        self.shaping = Shaping(
            {"webhdfs": LinkShaper("webhdfs", seed=seed), "s3": LinkShaper("s3", seed=seed)}
        )
        for target, settings in (shaping or {}).items():
            self.shaping.configure(target, **settings)
        self._options = {
            "list_page_size": list_page_size,
            "block_size": block_size,
            "ports": (webhdfs_port, datanode_port, s3_port),
        }
        self.control_app = ControlApp(
            self.shaping,
            stats=self.stats,
            reset_stats=self.reset_stats,
            actions={
                "config": lambda body: self.configure(**body),
                "buckets": lambda body: {"bucket": self.ensure_bucket(body["name"])},
            },
            health=lambda: {"pid": os.getpid()},
        )
        self.webhdfs: WebHdfsServer | None = None
        self.hadoop: HadoopHdfs | None = None
        self.s3: S3Server | None = None
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> DevStack:
        if self.webhdfs is not None:
            return self
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="airflow-hybrid-devstack-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        nn_port, dn_port, s3_port = self._options["ports"]
        if self.hdfs_kind == "hadoop":
            return self._start_with_hadoop(s3_port)
        webhdfs = WebHdfsServer(
            self._data_dir / "hdfs",
            host=self.host,
            port=nn_port,
            datanode_port=dn_port,
            list_page_size=self._options["list_page_size"],
            block_size=self._options["block_size"],
            owner=self.user,
            shaper=self.shaping["webhdfs"],
            control_app=self.control_app,
        )
        s3 = S3Server(host=self.host, port=s3_port, shaper=self.shaping["s3"], control_app=self.control_app)
        try:
            webhdfs.start()
            s3.start()
            for bucket in self.buckets:
                s3.ensure_bucket(bucket)
        except BaseException:
            webhdfs.stop()
            s3.stop()
            raise
        self.webhdfs, self.s3 = webhdfs, s3
        log.info(
            "devstack up: WebHDFS %s (data node %s), S3 %s",
            self.webhdfs_url,
            self.datanode_url,
            self.s3_endpoint,
        )
        return self

    def _start_with_hadoop(self, s3_port: int) -> DevStack:
        s3 = S3Server(host=self.host, port=s3_port, shaper=self.shaping["s3"], control_app=self.control_app)
        hadoop = HadoopHdfs(self._data_dir / "hadoop", host=self.host, user=self.user)
        try:
            s3.start()
            for bucket in self.buckets:
                s3.ensure_bucket(bucket)
            hadoop.start()
        except BaseException:
            s3.stop()
            raise
        self.hadoop, self.s3 = hadoop, s3
        log.info("devstack up: Apache Hadoop HDFS %s (%s), S3 %s", hadoop.webhdfs_url, hadoop.fs_uri, self.s3_endpoint)
        return self

    def stop(self) -> None:
        for server in (self.webhdfs, self.hadoop, self.s3):
            if server is not None:
                server.stop()
        self.webhdfs = self.hadoop = self.s3 = None
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def run_forever(self, state_dir: str | os.PathLike | None = None) -> None:
        """Start, write ``<state_dir>/devstack.json``, serve until SIGTERM/SIGINT, then stop."""
        self.start()
        state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        previous = {
            sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if state_path is not None:
                state_path.parent.mkdir(parents=True, exist_ok=True)
                temp = state_path.with_suffix(".tmp")
                temp.write_text(json.dumps(self.state(), indent=2))
                temp.replace(state_path)
            while not self._stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if state_path is not None:
                state_path.unlink(missing_ok=True)
            self.stop()

    # -- addresses ----------------------------------------------------------------------------------
    def _servers(self) -> tuple[WebHdfsServer, S3Server]:
        if self.s3 is None:
            raise RuntimeError("the devstack is not started; call start() or use it as a context manager")
        if self.webhdfs is None:
            raise RuntimeError("this devstack runs Apache Hadoop's HDFS, not the devstack WebHDFS server")
        return self.webhdfs, self.s3

    def _s3(self) -> S3Server:
        if self.s3 is None:
            raise RuntimeError("the devstack is not started; call start() or use it as a context manager")
        return self.s3

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("the devstack is not started")
        return self._data_dir

    @property
    def hdfs_dir(self) -> Path:
        """The local directory that is the HDFS root ``/``."""
        return self._servers()[0].root

    @property
    def webhdfs_host(self) -> str:
        return self.host

    @property
    def webhdfs_port(self) -> int:
        return self.hadoop.webhdfs_port if self.hadoop else self._servers()[0].port

    @property
    def webhdfs_url(self) -> str:
        return self.hadoop.webhdfs_url if self.hadoop else self._servers()[0].url

    @property
    def datanode_url(self) -> str:
        return self.hadoop.state()["datanode_url"] if self.hadoop else self._servers()[0].datanode_url

    @property
    def s3_endpoint(self) -> str:
        return self._s3().endpoint_url

    @property
    def control_url(self) -> str:
        """Base URL of the ``/_devstack/`` API (served on every port of ours: the namenode's, or S3's)."""
        return self.s3_endpoint if self.hadoop else self.webhdfs_url

    # -- operations -----------------------------------------------------------------------------------
    def ensure_bucket(self, name: str) -> str:
        return self._servers()[1].ensure_bucket(name)

    def configure(self, **settings: Any) -> dict:
        """Runtime settings: ``list_page_size``."""
        return self._servers()[0].configure(**settings)

    def stats(self) -> dict[str, Any]:
        """Requests per operation of each of our servers (none for Hadoop's), and each link's counters."""
        s3 = self._s3()
        return {
            "webhdfs": self.webhdfs.stats.snapshot() if self.webhdfs else {},
            "s3": s3.stats.snapshot(),
            "shaping": {name: link.stats() for name, link in self.shaping.links.items()},
        }

    def reset_stats(self) -> None:
        if self.webhdfs:
            self.webhdfs.stats.reset()
        self._s3().stats.reset()
        self.shaping.reset_stats()

    def state(self) -> dict[str, Any]:
        """What the state file records: pid, ports, URLs, data directory, which HDFS."""
        s3 = self._s3()
        hdfs: dict[str, Any]
        if self.hadoop is not None:
            hadoop = self.hadoop.state()
            hdfs = {"hdfs_dir": None, "datanode_port": None, "fs_uri": hadoop["fs_uri"], "hadoop": hadoop}
        else:
            webhdfs = self._servers()[0]
            hdfs = {"hdfs_dir": str(webhdfs.root), "datanode_port": webhdfs.datanode_port, "fs_uri": None}
        return {
            "pid": os.getpid(),
            "started_at": time.time(),
            "host": self.host,
            "user": self.user,
            "hdfs": self.hdfs_kind,
            "data_dir": str(self.data_dir),
            **hdfs,
            "webhdfs_port": self.webhdfs_port,
            "s3_port": s3.port,
            "webhdfs_url": self.webhdfs_url,
            "datanode_url": self.datanode_url,
            "s3_endpoint": s3.endpoint_url,
            "control_url": self.control_url,
            "buckets": list(self.buckets),
        }
