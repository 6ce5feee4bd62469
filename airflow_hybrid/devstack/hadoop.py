"""Apache Hadoop's own HDFS (NameNode + DataNode, two JVMs) on free loopback ports, for tests and benchmarks.

::

    with HadoopHdfs(base_dir) as hdfs:      # formats, starts, waits for a live data node out of safe mode
        conn = hdfs.webhdfs_connection()    # an Airflow ``webhdfs`` connection dict (user ``hdfs``)

The jars come from Maven Central through ``jvm/pom.xml`` (Hadoop |version|, the first release whose servers
run on Java 17), resolved once by Maven into its local repository; the classpath is cached next to the pom
(``jvm/target/classpath.txt``, or ``$HYBRID_HADOOP_CLASSPATH``). The cluster runs the way a small real one
does: WebHDFS on, permissions on (the superusers are the JVMs' OS user and, as on real clusters, ``hdfs``, a
member of ``supergroup``; ``/tmp`` and ``/user`` are ``1777``),
a small block size so test files span several blocks, no safe-mode extension, the data node addressed as
``127.0.0.1``. Its configuration and logs stay in ``base_dir`` (``logs/namenode.log``, ``logs/datanode.log``).

With ``kerberos=`` a :class:`~airflow_hybrid.devstack.kerberos.MiniKdc` (started), the cluster is secured as
on-prem clusters run: Kerberos RPC (``hdfs/localhost``), SPNEGO on WebHDFS (``HTTP/localhost``; the namenode is
addressed as ``localhost``, the data node as ``127.0.0.1``), block access tokens, SASL on the data-transfer
protocol (``dfs.data.transfer.protection=authentication``). A secure data node must otherwise run as root on
privileged ports, or serve HTTPS only; ``ignore.secure.ports.for.testing`` lets it run as any user on HTTP, as
Hadoop's own secure-cluster tests do. Connections then log in with the user's keytab
(:meth:`HadoopHdfs.webhdfs_connection`), the superuser calls as ``hdfs/localhost``.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.processes import free_ports
from airflow_hybrid.stores.base import StoreError

if TYPE_CHECKING:
    from airflow_hybrid.devstack.kerberos import MiniKdc

HADOOP_VERSION = "3.5.0"
#: The Maven project that lists the JVM artifacts (Hadoop's servers, DistCp, hadoop-aws).
POM = Path(__file__).resolve().parents[2] / "jvm" / "pom.xml"
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
DEFAULT_USER = "hdfs"
_NAMENODE = "org.apache.hadoop.hdfs.server.namenode.NameNode"
_DATANODE = "org.apache.hadoop.hdfs.server.datanode.DataNode"
_LOG4J = """\
log4j.rootLogger=INFO,F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=${hadoop.log.file}
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


class HadoopError(StoreError):
    """Hadoop could not be found, resolved, started or stopped."""


def java_command(java_home: str | None = None) -> str:
    """The ``java`` launcher of ``java_home``, ``$JAVA_HOME`` or the ``PATH`` (Java 17 or later)."""
    home = java_home or os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise HadoopError(
            "no Java found for Apache Hadoop (set JAVA_HOME, or run scripts/bootstrap.sh --test, which installs "
            "a JDK 17)"
        )
    return java


def hadoop_classpath(pom: Path = POM, refresh: bool = False) -> str:
    """The classpath of ``pom``'s dependencies, resolved by Maven once and cached beside it.

    ``$HYBRID_HADOOP_CLASSPATH`` overrides it (a Hadoop installation's ``hadoop classpath``, say).
    """
    if os.environ.get("HYBRID_HADOOP_CLASSPATH") and not refresh:
        return os.environ["HYBRID_HADOOP_CLASSPATH"]
    if not pom.exists():
        raise HadoopError(f"{pom} is missing: the Hadoop classpath is resolved from the project's source tree")
    cache = pom.parent / "target" / "classpath.txt"
    stamp = cache.with_suffix(".sha256")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if not refresh and cache.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return cache.read_text().strip()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise HadoopError("Maven (mvn) is needed once to resolve Hadoop's jars; run scripts/bootstrap.sh --test")
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={cache}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not cache.exists():
        raise HadoopError(f"mvn could not resolve {pom}:\n{(result.stdout + result.stderr)[-3000:]}")
    stamp.write_text(digest)
    return cache.read_text().strip()


def _site_xml(properties: dict[str, Any]) -> str:
    rows = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(str(value))}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


class HadoopHdfs(processes.Service):
    """A one-data-node HDFS of Apache Hadoop in two JVMs, stopped by whoever started it.

    :param base_dir: configuration, metadata, blocks and logs (kept after :meth:`stop` for a post-mortem, and
        reused by the next start: the namenode is formatted only once).
    :param block_size: ``dfs.blocksize`` (4 MiB, so test files span several blocks).
    :param user: the user the connections log in as; a superuser (group ``supergroup``) unless ``superuser``
        is false. Any other ``user.name`` is an ordinary user of no group.
    :param csrf: ``dfs.webhdfs.rest-csrf.enabled`` (writes need an ``X-XSRF-HEADER``).
    :param properties: more ``hdfs-site.xml`` properties.
    :param kerberos: a started KDC: Kerberos security on (see the module's docstring); ``user`` is then one of
        its users (a principal ``user@REALM`` with a keytab).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        block_size: int = DEFAULT_BLOCK_SIZE,
        user: str = DEFAULT_USER,
        superuser: bool = True,
        csrf: bool = False,
        heap: str = "384m",
        java_home: str | None = None,
        properties: dict[str, Any] | None = None,
        kerberos: MiniKdc | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.kerberos = kerberos
        # SPNEGO names the service by the URL's host: HTTP/localhost. The data node stays at 127.0.0.1, so
        # nothing sent to the namenode (its auth cookie) reaches it, as with separate hosts.
        self.host = "localhost" if kerberos is not None and host == "127.0.0.1" else host
        self.datanode_host = "127.0.0.1" if kerberos is not None else self.host
        self.block_size = block_size
        self.user = user
        self.superuser = getpass.getuser()
        self.user_is_superuser = superuser
        self.csrf = csrf
        self.heap = heap
        self.java_home = java_home
        self.properties = dict(properties or {})
        self.rpc_port = self.http_port = self.datanode_http_port = 0
        self._superuser_ccache: Path | None = None
        self._processes: dict[str, subprocess.Popen] = {}

    @classmethod
    def from_state(cls, state: dict[str, Any], user: str = DEFAULT_USER) -> HadoopHdfs:
        """A handle on a cluster another process runs (its :meth:`state`): addresses and client tools only."""
        hdfs = cls(state["base_dir"], block_size=state["block_size"], user=user)
        hdfs.rpc_port = int(state["fs_uri"].rsplit(":", 1)[1])
        hdfs.http_port = int(state["webhdfs_port"])
        hdfs.datanode_http_port = int(state["datanode_url"].rsplit(":", 1)[1])
        return hdfs

    # -- addresses ----------------------------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self.base_dir / "conf"

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def webhdfs_host(self) -> str:
        return self.host

    @property
    def webhdfs_port(self) -> int:
        return self.http_port

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def fs_uri(self) -> str:
        """``fs.defaultFS``: ``hdfs://127.0.0.1:<rpc port>`` (for DistCp, Spark and the ``hdfs`` CLI)."""
        return f"hdfs://{self.host}:{self.rpc_port}"

    def webhdfs_connection(self, user: str | None = None) -> dict[str, Any]:
        """An Airflow ``webhdfs`` connection dict for this cluster (Kerberized: the user's principal and keytab)."""
        conn = {"conn_type": "webhdfs", "host": self.host, "port": self.http_port, "login": user or self.user}
        if self.kerberos is not None:
            kdc = self.kerberos
            conn["extra"] = {
                "kerberos_principal": kdc.principal(user or self.user),
                "kerberos_keytab": str(kdc.keytab(user or self.user)),
                "krb5_conf": str(kdc.krb5_conf),
            }
        return conn

    def state(self) -> dict[str, Any]:
        return {
            "kind": "hadoop",
            "version": HADOOP_VERSION,
            "base_dir": str(self.base_dir),
            "fs_uri": self.fs_uri,
            "webhdfs_url": self.webhdfs_url,
            "webhdfs_port": self.http_port,
            "datanode_url": f"http://{self.datanode_host}:{self.datanode_http_port}",
            "block_size": self.block_size,
            "superuser": self.superuser,
            **({"kerberos": self.kerberos.state()} if self.kerberos is not None else {}),
            "pids": {name: process.pid for name, process in self._processes.items()},
        }

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> HadoopHdfs:
        """Write the configuration, format the namenode, start both JVMs and wait until writes work."""
        if self._processes:
            return self
        java = java_command(self.java_home)
        classpath = hadoop_classpath()
        self._configure()
        full_classpath = os.pathsep.join([str(self.conf_dir), classpath])
        if not (self.base_dir / "data" / "name" / "current").exists():  # kept across restarts otherwise
            self._run_once(java, full_classpath, "format", [_NAMENODE, "-format", "-force", "-nonInteractive"])
        try:
            for name, main in (("namenode", _NAMENODE), ("datanode", _DATANODE)):
                self._processes[name] = self._spawn(java, full_classpath, name, [main])
            self._wait_ready(timeout)
            for directory in ("/tmp", "/user"):
                self.superuser_call("PUT", directory, "MKDIRS", permission="1777")
                self.superuser_call("PUT", directory, "SETPERMISSION", permission="1777")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM both JVMs (SIGKILL after ``timeout``); the base directory is kept."""
        running, self._processes = self._processes, {}
        processes.stop(running.values(), timeout)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of each JVM's log, for a failing test's report."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path} ---\n{text[-chars:]}")
        return "\n".join(parts)

    # -- WebHDFS as the superuser (set-up and tests) ---------------------------------------------------
    def superuser_call(self, method: str, path: str, op: str, **params: Any) -> Any:
        """One namenode WebHDFS call as the superuser; the JSON answer (errors raise :class:`HadoopError`)."""
        if self.kerberos is not None:
            return self._kerberos_call(method, path, op, params)
        query = "&".join(f"{key}={value}" for key, value in {"op": op, **params, "user.name": self.superuser}.items())
        request = urllib.request.Request(f"{self.webhdfs_url}/webhdfs/v1{path}?{query}", method=method)
        if self.csrf:
            request.add_header("X-XSRF-HEADER", "airflow-hybrid")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback URL
                body = response.read()
        except urllib.error.HTTPError as error:
            raise HadoopError(f"WebHDFS {op} {path}: HTTP {error.code}: {error.read()[:500]!r}") from None
        return json.loads(body) if body else None

    def _spnego(self) -> Any:
        """A ``requests`` auth doing SPNEGO as ``hdfs/localhost`` (the namenode's own principal, a superuser)."""
        import spnego
        from requests_kerberos import OPTIONAL, HTTPKerberosAuth

        from airflow_hybrid.stores.hdfs.kerberos import use_krb5_conf

        kdc = self.kerberos
        use_krb5_conf(str(kdc.krb5_conf))
        if self._superuser_ccache is None:
            self._superuser_ccache = kdc.login("hdfs/localhost", self.base_dir / "superuser.ccache")
        credential = spnego.KerberosCCache(f"FILE:{self._superuser_ccache}", kdc.principal("hdfs/localhost"))
        return HTTPKerberosAuth(mutual_authentication=OPTIONAL, principal=credential)

    def _kerberos_call(self, method: str, path: str, op: str, params: dict[str, Any]) -> Any:
        """:meth:`superuser_call` with SPNEGO as ``hdfs/localhost``."""
        import requests

        url = f"{self.webhdfs_url}/webhdfs/v1{path}"
        headers = {"X-XSRF-HEADER": "airflow-hybrid"} if self.csrf else {}
        params = {"op": op, **params}
        response = requests.request(method, url, params=params, auth=self._spnego(), headers=headers, timeout=30)
        if response.status_code >= 400:
            raise HadoopError(f"WebHDFS {op} {path}: HTTP {response.status_code}: {response.content[:500]!r}")
        return response.json() if response.content else None

    def fs_shell(self, *args: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """``hadoop fs <args>`` (Hadoop's FsShell, RPC to the namenode) as ``user`` (default: the connection's)."""
        java = java_command(self.java_home)
        classpath = os.pathsep.join([str(self.conf_dir), hadoop_classpath()])
        env = self._client_env(user or self.user)
        command = [*self._jvm(java, classpath, "fs-shell", ["org.apache.hadoop.fs.FsShell", *args])]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if check and result.returncode != 0:
            raise HadoopError(f"hadoop fs {' '.join(args[:4])} ... failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def make_files(self, directory: str, count: int, prefix: str = "part-", threads: int = 8) -> None:
        """``count`` empty files ``<directory>/<prefix>0000000``... made over RPC on ``threads`` threads
        (``jvm/tools/MakeFiles.java``; ~1,000 files/s where WebHDFS makes ~200), as the connection's user."""
        java = java_command(self.java_home)
        classpath = os.pathsep.join([str(self.conf_dir), hadoop_classpath()])
        tool = POM.parent / "tools" / "MakeFiles.java"
        args = [str(tool), directory, prefix, str(count), str(threads)]
        env = self._client_env(self.user)
        result = subprocess.run(  # noqa: S603 - our own fixed command
            self._jvm(java, classpath, "make-files", args), env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise HadoopError(f"making {count} files in {directory} failed: {result.stderr[-2000:]}")

    # -- internals ----------------------------------------------------------------------------------
    def _client_env(self, user: str) -> dict[str, str]:
        """The environment of a Java client as ``user``: ``HADOOP_USER_NAME``, or a ticket cache of its own."""
        if self.kerberos is None:
            return {**os.environ, "HADOOP_USER_NAME": user}
        ccache = self.kerberos.login(user, self.base_dir / "ccache" / user.replace("/", "_"))
        return {**os.environ, "KRB5CCNAME": f"FILE:{ccache}"}

    def _security(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``core-site`` and ``hdfs-site`` properties of a Kerberized cluster (none without ``kerberos``)."""
        if self.kerberos is None:
            return {}, {}
        kdc = self.kerberos
        service, spnego, keytab = kdc.principal("hdfs/localhost"), kdc.principal("HTTP/localhost"), kdc.service_keytab
        core = {
            "hadoop.security.authentication": "kerberos",
            "hadoop.rpc.protection": "authentication",
            "hadoop.security.auth_to_local": "DEFAULT",  # hdfs/localhost@REALM -> hdfs, alice@REALM -> alice
            "ignore.secure.ports.for.testing": "true",
            # WebHDFS's filter (AuthFilterInitializer) takes these, as the rest of the web UI does.
            "hadoop.http.authentication.type": "kerberos",
            "hadoop.http.authentication.kerberos.principal": spnego,
            "hadoop.http.authentication.kerberos.keytab": str(keytab),
            "hadoop.http.authentication.simple.anonymous.allowed": "false",
        }
        hdfs = {
            "dfs.block.access.token.enable": "true",
            "dfs.namenode.kerberos.principal": service,
            "dfs.namenode.keytab.file": str(keytab),
            "dfs.datanode.kerberos.principal": service,
            "dfs.datanode.keytab.file": str(keytab),
            "dfs.namenode.kerberos.internal.spnego.principal": spnego,
            "dfs.web.authentication.kerberos.principal": spnego,
            "dfs.web.authentication.kerberos.keytab": str(keytab),
            "dfs.data.transfer.protection": "authentication",
            "dfs.http.policy": "HTTP_ONLY",
        }
        return core, hdfs

    def _configure(self) -> None:
        self.rpc_port, self.http_port, dn_port, self.datanode_http_port, dn_ipc = free_ports(5, self.datanode_host)
        host, dn_host = self.host, self.datanode_host
        secure_core, secure_hdfs = self._security()
        (self.base_dir / "data").mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        # HttpServer2 looks its web applications up on the classpath; Maven's jars do not carry them.
        for webapp in ("hdfs", "datanode", "static", "secondary"):
            (self.conf_dir / "webapps" / webapp).mkdir(parents=True, exist_ok=True)
        core = {
            "fs.defaultFS": f"hdfs://{host}:{self.rpc_port}",
            "hadoop.tmp.dir": str(self.base_dir / "data"),
            "hadoop.http.staticuser.user": self.user,
            # Groups without OS accounts: the connection user in supergroup, everyone else in none.
            "hadoop.user.group.static.mapping.overrides": (
                f"{self.user}=supergroup;dr.who=;" if self.user_is_superuser else "dr.who=;"
            ),
            **secure_core,
        }
        hdfs = {
            "dfs.namenode.name.dir": str(self.base_dir / "data" / "name"),
            "dfs.datanode.data.dir": str(self.base_dir / "data" / "blocks"),
            "dfs.namenode.rpc-address": f"{host}:{self.rpc_port}",
            "dfs.namenode.http-address": f"{host}:{self.http_port}",
            "dfs.namenode.servicerpc-bind-host": host,
            "dfs.datanode.address": f"{dn_host}:{dn_port}",
            "dfs.datanode.http.address": f"{dn_host}:{self.datanode_http_port}",
            "dfs.datanode.ipc.address": f"{dn_host}:{dn_ipc}",
            "dfs.datanode.hostname": dn_host,
            "dfs.client.use.datanode.hostname": "true",
            "dfs.replication": 1,
            "dfs.blocksize": self.block_size,
            "dfs.namenode.fs-limits.min-block-size": min(self.block_size, 1024 * 1024),
            "dfs.permissions.enabled": "true",
            "dfs.permissions.superusergroup": "supergroup",
            "dfs.namenode.safemode.extension": 0,
            "dfs.namenode.safemode.min.datanodes": 1,
            "dfs.webhdfs.enabled": "true",
            "dfs.webhdfs.rest-csrf.enabled": str(self.csrf).lower(),
            "dfs.heartbeat.interval": 1,
            "dfs.namenode.accesstime.precision": 0,
            "dfs.datanode.du.reserved": 0,
            "dfs.namenode.resource.du.reserved": 0,
            # As MiniDFSCluster does: the edit log is not fsynced per operation (a test cluster's metadata
            # writes at memory speed; what clients see of each operation is unchanged).
            "dfs.namenode.edits.noeditlogchannelflush": "true",
            # The data node's own DFS client waits 400 ms before asking for a file's last block to complete;
            # on loopback it completes in a few ms (each WebHDFS CREATE would otherwise take ~450 ms).
            "dfs.client.block.write.locateFollowingBlock.initial.delay.ms": 20,
            **secure_hdfs,
            **self.properties,
        }
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "core-site.xml").write_text(_site_xml(core))
        (self.conf_dir / "hdfs-site.xml").write_text(_site_xml(hdfs))
        (self.conf_dir / "log4j.properties").write_text(_LOG4J)

    def _jvm(self, java: str, classpath: str, name: str, args: list[str]) -> list[str]:
        realm = [f"-Djava.security.krb5.conf={self.kerberos.krb5_conf}"] if self.kerberos is not None else []
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            f"-Dhadoop.log.dir={self.logs_dir}",
            f"-Dhadoop.log.file={self.logs_dir / f'{name}.log'}",
            "-Djava.net.preferIPv4Stack=true",
            *realm,
            "-cp",
            classpath,
            *args,
        ]

    def _run_once(self, java: str, classpath: str, name: str, args: list[str]) -> None:
        with open(self.logs_dir / f"{name}.out", "wb") as out:
            result = subprocess.run(  # noqa: S603 - our own fixed command
                self._jvm(java, classpath, name, args), stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode != 0:
            raise HadoopError(f"Hadoop {name} failed (exit {result.returncode}):\n{self.log_tail()}")

    def _spawn(self, java: str, classpath: str, name: str, args: list[str]) -> subprocess.Popen:
        # a killed test run or devstack leaves no JVM behind
        return processes.spawn(self._jvm(java, classpath, name, args), self.logs_dir / f"{name}.out")

    def _jmx(self, bean: str) -> dict[str, Any]:
        url = f"{self.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name={bean}"
        if self.kerberos is not None:  # the web UI is behind SPNEGO too
            import requests

            beans = requests.get(url, auth=self._spnego(), timeout=5).json()["beans"]
            return beans[0] if beans else {}
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            beans = json.loads(response.read())["beans"]
        return beans[0] if beans else {}

    def _wait_ready(self, timeout: float) -> None:
        """Until the namenode has a live data node with space and has left safe mode."""
        last: list[Any] = [None]

        def ready() -> bool:
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                state = self._jmx("FSNamesystemState")
                info = self._jmx("NameNodeInfo")
                last[0] = (state.get("NumLiveDataNodes"), info.get("Safemode"), state.get("CapacityRemaining"))
                return bool(state.get("NumLiveDataNodes", 0) >= 1 and not info.get("Safemode") and last[0][2])
            return False

        processes.wait_ready(
            ready,
            self._processes,
            timeout,
            interval=0.2,
            exited=lambda name, code: HadoopError(f"Hadoop {name} exited with {code}:\n{self.log_tail()}"),
            timed_out=lambda: HadoopError(
                f"Hadoop HDFS was not ready in time (last state {last[0]}):\n{self.log_tail()}"
            ),
        )
