"""A single-node Trino (coordinator and worker in one JVM) with a Hive catalog over HDFS and S3, for tests.

::

    with TrinoServer(base_dir, s3=S3Endpoint("http://127.0.0.1:5000", "testing", "testing")) as trino:
        trino.cli_command()   # ["java", "-jar", ".../trino-cli-476-executable.jar", "--server", trino.url]

The server tarball and the executable CLI jar come from Maven Central (``scripts/trino.sh`` fetches both and
unpacks the server into ``jvm/target/trino-server-<version>/`` with only the Hive plugin kept). Trino |version|
needs Java 22 or later: ``java_home``, ``$TRINO_JAVA_HOME``, else the newest JDK under ``/usr/lib/jvm`` that is.

The catalog ``hive`` is the Hive connector with a file metastore in ``base_dir``, ``hdfs://`` through Hadoop's
client (``fs.hadoop.enabled``; URIs name the namenode, ``hdfs://host:port/...``, and Trino reads and writes as
``HADOOP_USER_NAME``), ``s3://`` through Trino's native S3 client (path-style, to ``s3.endpoint``), non-managed
table writes allowed (a CTAS ``WITH (external_location = ...)``) and recursive directory listing (a table over
a directory whose files sit in subdirectories). The JVM heap is 1 GiB. Configuration, data and the server log
(``server.log``) stay in ``base_dir``.

Catalogs are dynamic (``catalog.management=dynamic``): a test adds one for an endpoint it starts later, e.g. the
S3 gateway on a free port, without a second JVM, and drops it after; :meth:`TrinoServer.execute` runs a statement
through Trino's client protocol (HTTP, no CLI JVM)::

    trino.create_catalog("gw", hive_catalog_properties(metastore_dir, s3=S3Endpoint(gateway_url, key, secret)))
    trino.execute("SELECT count(*) FROM gw.s.t")   # [[42]]
    trino.drop_catalog("gw")
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.processes import free_ports
from airflow_hybrid.stores.base import StoreError

TRINO_VERSION = "476"
MIN_JAVA = 22
ROOT = Path(__file__).resolve().parents[2]
_JVM_DIR = Path("/usr/lib/jvm")
_JVM_OPTIONS = (
    "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M", "-Djdk.attach.allowAttachSelf=true", "-XX:+EnableDynamicAgentLoading",
    "-Dfile.encoding=UTF-8", "--enable-native-access=ALL-UNNAMED", "-Djava.net.preferIPv4Stack=true",
)  # fmt: skip


class TrinoError(StoreError):
    """Trino could not be found, started or stopped."""


@dataclass(frozen=True)
class S3Endpoint:
    """The S3 service the ``hive`` catalog reads and writes ``s3://`` through."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _java_major(java_home: Path) -> int:
    release = java_home / "release"
    if not release.exists():
        return 0
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def trino_java_home(java_home: str | os.PathLike | None = None) -> Path:
    """A JDK that runs Trino: ``java_home``, ``$TRINO_JAVA_HOME``, else the newest under ``/usr/lib/jvm``."""
    given = java_home or os.environ.get("TRINO_JAVA_HOME")
    candidates = [Path(given)] if given else sorted(_JVM_DIR.glob("*"), key=_java_major, reverse=True)
    for home in candidates:
        if _java_major(home) >= MIN_JAVA and os.access(home / "bin" / "java", os.X_OK):
            return home
    raise TrinoError(f"Trino {TRINO_VERSION} needs Java {MIN_JAVA}+: none found (set TRINO_JAVA_HOME)")


def _maven_repo() -> Path:
    return Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))


def trino_server_dir(version: str = TRINO_VERSION) -> Path:
    """The unpacked server (``$TRINO_HOME``, else ``jvm/target/trino-server-<version>``)."""
    home = Path(os.environ.get("TRINO_HOME", ROOT / "jvm" / "target" / f"trino-server-{version}"))
    if not (home / "lib").is_dir() or not (home / "plugin" / "hive").is_dir():
        raise TrinoError(f"no Trino server at {home}: run scripts/trino.sh (fetches it from Maven Central)")
    return home


def trino_cli_jar(version: str = TRINO_VERSION) -> Path:
    """The executable CLI jar in the local Maven repository (``scripts/trino.sh`` fetches it)."""
    jar = _maven_repo() / "io" / "trino" / "trino-cli" / version / f"trino-cli-{version}-executable.jar"
    if not jar.is_file():
        raise TrinoError(f"no Trino CLI at {jar}: run scripts/trino.sh (fetches it from Maven Central)")
    return jar


def _properties(values: dict[str, Any]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def hive_catalog_properties(metastore_dir: str | os.PathLike, *, s3: S3Endpoint | None = None) -> dict[str, Any]:
    """A Hive catalog's properties (``connector.name`` included): a file metastore in ``metastore_dir`` (which
    must exist), ``hdfs://`` and ``file://`` (the metastore's) through Hadoop's client, ``s3://`` through Trino's
    native S3 client to ``s3`` (path style) if given, non-managed table writes and recursive listing allowed."""
    properties: dict[str, Any] = {
        "connector.name": "hive",
        "hive.metastore": "file",
        "hive.metastore.catalog.dir": Path(metastore_dir).resolve().as_uri(),
        "hive.non-managed-table-writes-enabled": "true",
        "hive.recursive-directories": "true",
        "fs.hadoop.enabled": "true",
    }
    if s3 is not None:
        properties.update({
            "fs.native-s3.enabled": "true",
            "s3.endpoint": s3.url,
            "s3.region": s3.region,
            "s3.path-style-access": "true",
            "s3.aws-access-key": s3.access_key,
            "s3.aws-secret-key": s3.secret_key,
        })  # fmt: skip
    return properties


def _sql_literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class TrinoServer(processes.Service):
    """One Trino JVM serving coordinator and worker on a free loopback port, stopped by whoever started it.

    :param base_dir: configuration (``etc/``), the file metastore, node data and ``server.log``.
    :param s3: the S3 endpoint for ``s3://`` locations (none: only ``hdfs://`` and ``file://``).
    :param hadoop_user: the user Trino's Hadoop client acts as on HDFS (``HADOOP_USER_NAME``).
    :param catalog_properties: more properties of the ``hive`` catalog.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        *,
        s3: S3Endpoint | None = None,
        host: str = "127.0.0.1",
        hadoop_user: str = "hdfs",
        heap: str = "1G",
        java_home: str | os.PathLike | None = None,
        catalog_properties: dict[str, Any] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.s3 = s3
        self.host = host
        self.hadoop_user = hadoop_user
        self.heap = heap
        self.java_home = java_home
        self.catalog_properties = dict(catalog_properties or {})
        self.port = 0
        self._process: subprocess.Popen | None = None

    # -- addresses ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def etc_dir(self) -> Path:
        return self.base_dir / "etc"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    def cli_command(self, java_home: str | os.PathLike | None = None) -> list[str]:
        """The command standing in for ``trino-cli`` on an EMR primary node: the CLI jar on this server."""
        java = trino_java_home(java_home or self.java_home) / "bin" / "java"
        return [str(java), "-jar", str(trino_cli_jar()), "--server", self.url]

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 300.0) -> TrinoServer:
        """Write the configuration, start the JVM and wait until the server has finished starting."""
        if self._process is not None:
            return self
        home = trino_server_dir()
        java = trino_java_home(self.java_home) / "bin" / "java"
        (self.port,) = free_ports(1, self.host)
        self._configure(home)
        command = [
            str(java), f"-Xmx{self.heap}", *_JVM_OPTIONS, f"-DHADOOP_USER_NAME={self.hadoop_user}",
            f"-Dconfig={self.etc_dir / 'config.properties'}", f"-Dlog.levels-file={self.etc_dir / 'log.properties'}",
            *(f"-D{key}={value}" for key, value in self._node_properties().items()),
            "-cp", str(home / "lib" / "*"), "io.trino.server.TrinoServer",
        ]  # fmt: skip
        env = {**os.environ, "HADOOP_USER_NAME": self.hadoop_user}
        # In base_dir: Trino reads its catalog store's settings from etc/catalog-store.properties under its cwd.
        self._process = processes.spawn(command, self.log_path, env=env, cwd=self.base_dir)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the JVM (SIGKILL after ``timeout``); the base directory is kept."""
        process, self._process = self._process, None
        if process is not None:
            processes.stop([process], timeout)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of ``server.log``, for a failing test's report."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return f"(no log at {self.log_path})"

    # -- configuration ------------------------------------------------------------------------------
    def _node_properties(self) -> dict[str, Any]:
        return {
            "node.environment": "hybrid_test",
            "node.id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(self.base_dir))),
            "node.data-dir": self.base_dir / "data",
            "node.bind-ip": self.host,
            "node.internal-address": self.host,
        }

    def catalog(self) -> dict[str, Any]:
        """The ``hive`` catalog's properties."""
        return {**hive_catalog_properties(self.base_dir / "metastore", s3=self.s3), **self.catalog_properties}

    # -- statements and dynamic catalogs ------------------------------------------------------------
    def execute(
        self, sql: str, *, catalog: str | None = None, schema: str | None = None, user: str = "hybrid",
        timeout: float = 600.0,
    ) -> list[list[Any]]:
        """One statement's rows through Trino's client protocol (``POST /v1/statement``, then its ``nextUri``s),
        values as Trino's JSON gives them (``bigint`` an int, ``decimal`` and ``date`` strings). A failed
        statement raises :class:`TrinoError` with Trino's error name and message."""
        headers = {"X-Trino-User": user, "Content-Type": "text/plain; charset=utf-8"}
        if catalog:
            headers["X-Trino-Catalog"] = catalog
        if schema:
            headers["X-Trino-Schema"] = schema
        request = urllib.request.Request(f"{self.url}/v1/statement", data=sql.encode(), headers=headers,
                                         method="POST")
        deadline = time.monotonic() + timeout
        rows: list[list[Any]] = []
        while True:
            try:
                with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as response:  # noqa: S310 - loopback URL
                    result = json.loads(response.read())
            except urllib.error.HTTPError as err:
                if err.code in (429, 502, 503, 504) and time.monotonic() < deadline:  # the protocol's "retry"
                    time.sleep(0.1)
                    continue
                raise TrinoError(f"Trino at {self.url} answered {err.code} to {sql[:200]!r}: "
                                 f"{err.read()[:500].decode(errors='replace')}") from None
            except (OSError, ValueError) as err:
                raise TrinoError(f"Trino at {self.url} failed on {sql[:200]!r}: {err}") from None
            error = result.get("error")
            if error:
                raise TrinoError(f"Trino query {result.get('id')} failed ({error.get('errorName')}): "
                                 f"{error.get('message')}\n  in: {sql[:500]}")
            rows.extend(result.get("data") or ())
            next_uri = result.get("nextUri")
            if not next_uri:
                return rows
            if time.monotonic() > deadline:
                raise TrinoError(f"Trino query {result.get('id')} did not finish in {timeout:.0f} s: {sql[:200]!r}")
            request = urllib.request.Request(next_uri, headers={"X-Trino-User": user})

    def create_catalog(self, name: str, properties: dict[str, Any]) -> None:
        """``CREATE CATALOG name USING <connector.name> WITH (...)``, e.g. :func:`hive_catalog_properties` for an
        endpoint known only after the server started. It is kept in ``etc/catalog`` until :meth:`drop_catalog`."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise TrinoError(f"catalog name {name!r}: lower-case letters, digits and _ only")
        rest = {key: value for key, value in properties.items() if key != "connector.name"}
        if "connector.name" not in properties:
            raise TrinoError(f"catalog {name!r}: no connector.name in its properties")
        with_clause = ", ".join(f'"{key}" = {_sql_literal(value)}' for key, value in rest.items())
        self.execute(f"CREATE CATALOG {name} USING {properties['connector.name']} WITH ({with_clause})")

    def drop_catalog(self, name: str) -> None:
        """``DROP CATALOG IF EXISTS name``."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise TrinoError(f"catalog name {name!r}: lower-case letters, digits and _ only")
        self.execute(f"DROP CATALOG IF EXISTS {name}")

    def _configure(self, home: Path) -> None:
        (self.etc_dir / "catalog").mkdir(parents=True, exist_ok=True)
        (self.base_dir / "metastore").mkdir(exist_ok=True)
        config = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": self.port,
            "discovery.uri": self.url,
            "plugin.dir": home / "plugin",
            "catalog.management": "dynamic",
            "catalog.store": "file",  # etc/catalog's files at start; CREATE CATALOG's written there too
            "query.max-memory": "512MB",
            "query.max-memory-per-node": "256MB",
        }
        (self.etc_dir / "config.properties").write_text(_properties(config))
        (self.etc_dir / "catalog-store.properties").write_text(
            _properties({"catalog.config-dir": self.etc_dir / "catalog"})
        )
        (self.etc_dir / "log.properties").write_text("io.trino=INFO\norg.apache.hadoop=WARN\n")
        (self.etc_dir / "catalog" / "hive.properties").write_text(_properties(self.catalog()))

    def _info(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/v1/info", timeout=5) as response:  # noqa: S310 - loopback URL
            return json.loads(response.read())

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            try:
                return self._info().get("starting") is False
            except (OSError, ValueError, urllib.error.URLError):
                return False

        assert self._process is not None
        processes.wait_ready(
            ready,
            {"trino": self._process},
            timeout,
            interval=0.5,
            exited=lambda _, code: TrinoError(f"Trino exited with {code} during start:\n{self.log_tail()}"),
            timed_out=lambda: TrinoError(
                f"Trino did not finish starting at {self.url} in time:\n{self.log_tail()}"
            ),
        )
