"""The bulk copy of a plan batch by Apache Hadoop DistCp (``engine="distcp"``).

For a batch, the files that still need a copy (:meth:`~airflow_hybrid.migration.migrator.Migrator.pending_copies`:
no identical copy at the STORE member yet, no conflicting object there, source unchanged) are written, one
source URI a line, by :func:`~airflow_hybrid.migration.manifest.write_file_lists` (shared with S3DistCp,
:mod:`airflow_hybrid.migration.s3distcp`). DistCp copies the files listed with ``-f`` into its target
*by name* (the root of each listed file is its parent directory), so there is one list, and one DistCp run,
per directory of the batch; S3DistCp keeps each path relative to ``--src``, so EMR gets one list per
(REMOVE, STORE) member pair. Each run is::

    hadoop distcp -conf <job properties>.xml -direct -f file:///tmp/.../00003-hdfs-s3-00000.txt \\
        s3a://bucket/warehouse/store_sales/ss_sold_date_sk=2451545

with ``-direct`` for object stores (S3A makes an object visible only once complete; no temporary object
renamed, i.e. copied, afterwards; HDFS targets keep DistCp's temporary file and rename) and without ``-update``
or ``-overwrite``, so an object that appears at a target meanwhile is skipped, never replaced (the
verification then reports it as a conflict and keeps the source). When every run exits 0, the operator
verifies each copy and removes its source exactly as the other engines do
(:class:`~airflow_hybrid.migration.migrator.Migrator` with ``copy=False``). A run that fails or is killed raises
:class:`DistCpError` (exit status, DistCp's own error line) and nothing is removed; what it copied is
recognised by the next run, which copies only the rest.

Configuration, from the lowest precedence to the highest:

* ``fs.s3a.bucket.<bucket>.create.checksum.algorithm=CRC32C`` for every S3 STORE bucket: S3 then keeps a
  CRC32C of each object S3A writes in one PUT, so its verification reads only the source; multipart objects
  get a COMPOSITE checksum, and are read back;
* the S3 STORE member's Airflow AWS connection (``distcp_s3a_from_connection``, on by default), as
  per-bucket S3A properties: ``endpoint_url`` -> ``endpoint`` (``path.style.access`` for non-AWS endpoints,
  ``connection.ssl.enabled`` from its scheme), ``region_name`` -> ``endpoint.region``, and explicit keys
  (login/password, ``aws_session_token``) -> ``access.key``/``secret.key``/``session.token``. Keys are
  written to a mode-0600 file passed with ``-conf``, never on the command line; turn this off where the
  cluster has its own (``core-site.xml``, a JCEKS ``hadoop.security.credential.provider.path``, an
  instance profile);
* Hadoop properties among the members' mount options (dotted names starting with ``fs.``, ``dfs.``,
  ``hadoop.``, ``mapreduce.``, ``yarn.``, ``distcp.`` or ``ipc.``), e.g.
  ``alluxio-union.s3.option.fs.s3a.bucket.lake.endpoint=https://s3.eu-west-1.amazonaws.com``;
* the operator's ``distcp_properties``.

The operator's other settings: ``distcp_command`` (the Hadoop client on this host, the worker being an
edge node; default ``["hadoop", "distcp"]``, any prefix such as ``["sudo", "-u", "etl", "hadoop", "distcp"]``;
:func:`local_distcp_command` runs DistCp with local MapReduce from the project's Maven classpath),
``distcp_env`` (added to the client's environment: ``HADOOP_USER_NAME``, ``HADOOP_CONF_DIR``, ``KRB5CCNAME``...),
``distcp_args`` (more DistCp options: ``-m 50``, ``-bandwidth 100``, ``-strategy dynamic``...),
``distcp_s3_scheme`` (``s3a``; ``s3`` for EMRFS) and ``distcp_list_prefix``/``distcp_list_conn_id``
(where the file lists go: a local temporary directory, removed afterwards, by default; an ``hdfs://`` or
``s3://`` prefix keeps them). The client reads the job properties file locally, so it must run here.

For moto's S3 server (the devstack), add :data:`DEVSTACK_S3A_PROPERTIES`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import posixpath
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape

from airflow_hybrid.migration.manifest import CopyJob, write_file_lists
from airflow_hybrid.stores.base import Store, StoreError

if TYPE_CHECKING:
    from airflow_hybrid.migration.migrator import Migrator
    from airflow_hybrid.migration.planner import MountLike, PlanEntry

log = logging.getLogger(__name__)

DISTCP_MAIN = "org.apache.hadoop.tools.DistCp"
DEFAULT_COMMAND = ("hadoop", "distcp")
#: Targets DistCp writes in place (``-direct``): objects appear only when complete.
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "abfs", "abfss", "oss")
#: Member options with these prefixes are Hadoop properties, handed to DistCp.
HADOOP_PROPERTY_PREFIXES = ("fs.", "dfs.", "hadoop.", "mapreduce.", "yarn.", "distcp.", "ipc.")
#: Per-bucket S3A defaults for every S3 STORE bucket (``fs.s3a.bucket.<bucket>.<key>``).
S3A_BUCKET_DEFAULTS = {"create.checksum.algorithm": "CRC32C"}
#: What Hadoop 3.5's S3A needs beyond a connection's endpoint (path-style, plain HTTP), region and keys to
#: write to moto's S3 server (checked with moto 5.2): single-PUT uploads only. moto reports the CRC32C of a
#: multipart upload as a whole-object checksum while it holds the checksum of the part checksums, so a
#: multipart copy would fail verification as a different object (its source kept). The rest works with
#: S3A's defaults: SDK request checksums stay off (``fs.s3a.checksum.generation=false``),
#: ``fs.s3a.create.checksum.algorithm=CRC32C`` is honoured for single PUTs, and DistCp reads nothing from
#: S3, so ``fs.s3a.change.detection.*`` (etag, checked on reads) never comes into play.
DEVSTACK_S3A_PROPERTIES = {"fs.s3a.multipart.uploads.enabled": "false"}
#: Properties whose values never reach a log line.
_SECRET = re.compile(r"(secret|password|session\.token|access\.key|\.key$)", re.IGNORECASE)
#: DistCp's exit statuses (``DistCpConstants``), as a process sees them (``status & 0xff``).
EXIT_STATUSES = {
    255: "invalid arguments",
    254: "duplicate file names in the list",
    253: "ACLs not supported by a file system",
    252: "XAttrs not supported by a file system",
    25: "the copy failed",
}
_LOG4J = """\
log4j.rootLogger=INFO,E
log4j.appender.E=org.apache.log4j.ConsoleAppender
log4j.appender.E.target=System.err
log4j.appender.E.layout=org.apache.log4j.PatternLayout
log4j.appender.E.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.conf.Configuration.deprecation=WARN
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.metrics2=WARN
"""
_HADOOP_LEVEL = re.compile(r"^\S+ \S+ (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ")
_EXCEPTION = re.compile(r"^(Caused by: )?[\w.$]+(Exception|Error)\b")
_COUNTER = re.compile(r"^\s*(Files Copied|Bytes Copied|Files Skipped|Bytes Skipped)=(\d+)\s*$")


class DistCpError(StoreError):
    """A DistCp run failed or was killed; the message names the run, the exit status and DistCp's error."""

    def __init__(self, message: str, returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


# -- properties -------------------------------------------------------------------------------------
def hadoop_uri(uri: str, s3_scheme: str = "s3a") -> str:
    """``uri`` as a Hadoop client names it: ``s3://`` becomes ``<s3_scheme>://``; others are unchanged."""
    scheme, sep, rest = uri.partition("://")
    return f"{s3_scheme}://{rest}" if sep and scheme.lower() in ("s3", "s3a") else uri


def s3a_properties(store: Store, *, from_connection: bool = True) -> dict[str, str]:
    """Per-bucket S3A properties for an S3 store: :data:`S3A_BUCKET_DEFAULTS`, and with ``from_connection``
    the endpoint, region, addressing and explicit keys of its Airflow AWS connection."""
    bucket = getattr(store, "bucket", None)
    if store.scheme != "s3" or not bucket:
        return {}
    base = f"fs.s3a.bucket.{bucket}."
    props = {base + key: value for key, value in S3A_BUCKET_DEFAULTS.items()}
    conn_id = getattr(store, "aws_conn_id", None)
    if not from_connection or not conn_id:
        return props
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    config = S3Hook(aws_conn_id=conn_id).conn_config
    endpoint = _service_endpoint(config)
    if endpoint:
        parsed = urlparse(endpoint)
        props[base + "endpoint"] = endpoint
        props[base + "connection.ssl.enabled"] = str(parsed.scheme != "http").lower()
        addressing = ((getattr(config, "botocore_config", None) and config.botocore_config.s3) or {}).get(
            "addressing_style"
        )
        aws = (parsed.hostname or "").endswith(".amazonaws.com")
        props[base + "path.style.access"] = str(addressing == "path" or (addressing is None and not aws)).lower()
    if config.region_name:
        props[base + "endpoint.region"] = config.region_name
    if config.aws_access_key_id and config.aws_secret_access_key:
        props[base + "access.key"] = config.aws_access_key_id
        props[base + "secret.key"] = config.aws_secret_access_key
        if config.aws_session_token:
            props[base + "session.token"] = config.aws_session_token
            props[base + "aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
    return props


def _service_endpoint(config: Any) -> str | None:
    getter = getattr(config, "get_service_endpoint_url", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            return getter("s3") or None
    return config.endpoint_url or None


def member_hadoop_properties(mount: MountLike, members: Iterable[str]) -> dict[str, str]:
    """Hadoop properties among the members' mount options (:data:`HADOOP_PROPERTY_PREFIXES`)."""
    spec = getattr(mount, "spec", None)
    props: dict[str, str] = {}
    for member in members:
        options = spec.members[member].options if spec is not None and member in spec.members else {}
        props.update({k: str(v) for k, v in options.items() if k.startswith(HADOOP_PROPERTY_PREFIXES)})
    return props


def redact(properties: Mapping[str, str]) -> dict[str, str]:
    """``properties`` with secret values replaced by ``***`` (for logs and errors)."""
    return {key: "***" if _SECRET.search(key) else value for key, value in properties.items()}


def _site_xml(properties: Mapping[str, str]) -> str:
    rows = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(str(value))}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


# -- the Hadoop client ------------------------------------------------------------------------------
def local_distcp_command(work_dir: str | os.PathLike, *, java_home: str | None = None, heap: str = "512m") -> list[str]:
    """DistCp with local MapReduce (``mapreduce.framework.name=local``) in a JVM of its own, from the
    project's Maven classpath (:func:`~airflow_hybrid.devstack.hadoop.hadoop_classpath`): the Hadoop client
    of the tests, the benchmarks and the devstack. ``work_dir`` holds its log4j set-up and MapReduce's local
    staging; the Hadoop URIs it is given must name their namenode (``hdfs://host:port/...``)."""
    from airflow_hybrid.devstack.hadoop import hadoop_classpath, java_command

    conf = Path(work_dir) / "distcp-conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "log4j.properties").write_text(_LOG4J)
    return [
        java_command(java_home), f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true", "-cp", os.pathsep.join([str(conf), hadoop_classpath()]), DISTCP_MAIN,
        "-Dmapreduce.framework.name=local", f"-Dhadoop.tmp.dir={Path(work_dir).resolve() / 'hadoop-tmp'}",
    ]


@dataclass
class DistCpResult:
    """What a DistCp run reported: its job id and counters (absent when it did not print them)."""

    job_id: str | None = None
    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0


class DistCp:
    """Runs DistCp over :class:`CopyJob` file lists with a Hadoop client, streaming its output to the log.

    :param command: the client up to DistCp's own arguments (``["hadoop", "distcp"]``).
    :param properties: job properties (passed in a ``-conf`` file, mode 0600).
    :param env: added to the client's environment.
    :param args: more DistCp options (before ``-f``).
    :param s3_scheme: the scheme S3 URIs get (``s3a``; ``s3`` on EMRFS).
    """

    def __init__(
        self,
        command: Sequence[str] = DEFAULT_COMMAND,
        *,
        properties: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        s3_scheme: str = "s3a",
        logger: Any = log,
    ) -> None:
        if not command:
            raise ValueError("the DistCp command is empty (expected e.g. ['hadoop', 'distcp'])")
        self.command = [str(part) for part in command]
        self.properties = {key: str(value) for key, value in (properties or {}).items()}
        self.env = dict(env or {})
        self.args = [str(arg) for arg in args]
        self.s3_scheme = s3_scheme
        self.log = logger
        self._process: subprocess.Popen | None = None
        self._terminated = False
        self._lock = threading.Lock()

    def job_command(self, job: CopyJob, conf_file: str) -> list[str]:
        """The command of one run; a single listed file is given its own target (DistCp copies a solitary
        file *to* a target that does not exist, and *into* one that is a directory)."""
        target = hadoop_uri(job.dest_root, self.s3_scheme)
        if job.files == 1:
            target = posixpath.join(target, posixpath.basename(job.first_path))
        listing = hadoop_uri(job.manifest_uri, self.s3_scheme)
        # Object stores make an object visible only once it is complete, so DistCp writes it in place; on a
        # file system it writes a temporary file and renames it (a killed run leaves no partial file).
        direct = ["-direct"] if urlparse(target).scheme.lower() in OBJECT_STORE_SCHEMES else []
        return [*self.command, "-conf", conf_file, *direct, *self.args, "-f", listing, target]

    def run(self, job: CopyJob, defaults: Mapping[str, str] | None = None) -> DistCpResult:
        """Run DistCp over one file list; raise :class:`DistCpError` unless it exits 0.

        :param defaults: job properties that :attr:`properties` override (e.g. :func:`s3a_properties`).
        """
        properties = {**(defaults or {}), **self.properties}
        with tempfile.TemporaryDirectory(prefix="distcp-") as tmp:
            conf_file = os.path.join(tmp, "distcp-job.xml")
            with os.fdopen(os.open(conf_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(_site_xml(properties))
            command = self.job_command(job, conf_file)
            where = f"DistCp of {job.files} files {job.src_root} -> {job.dest_root} (list {job.manifest_uri})"
            self.log.info("%s: %s, properties %s", where, " ".join(command), redact(properties))
            returncode, tail, result = self._execute(command)
        if returncode == 0:
            self.log.info("%s: done (job %s, %d files copied, %d bytes)", where, result.job_id,
                          result.files_copied, result.bytes_copied)
            return result
        output = "\n".join(tail)
        if self._terminated:
            what = "was stopped (task killed)"
        elif returncode < 0:
            what = f"was killed by {_signal_name(-returncode)}"
        else:
            meaning = EXIT_STATUSES.get(returncode, "failed")
            what = f"failed with exit status {returncode} ({meaning})"
        reason = _error_reason(tail)
        raise DistCpError(f"{where} {what}" + (f": {reason}" if reason else "") + "; no source was removed",
                          returncode, output)

    def _execute(self, command: list[str]) -> tuple[int, collections.deque[str], DistCpResult]:
        tail: collections.deque[str] = collections.deque(maxlen=200)
        result = DistCpResult()
        with self._lock:
            if self._terminated:
                raise DistCpError("DistCp was not started: the task is being killed; no source was removed")
            try:
                process = subprocess.Popen(  # noqa: S603 - the command is the operator's configuration
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env}, start_new_session=True,
                )
            except OSError as error:
                raise DistCpError(f"could not start DistCp ({command[0]}): {error}; no source was removed") from error
            self._process = process
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                tail.append(line)
                _count(line, result)
                level = _HADOOP_LEVEL.match(line)
                if level and level.group(1) in ("WARN", "ERROR", "FATAL"):
                    self.log.warning("[distcp] %s", line)
                else:
                    self.log.info("[distcp] %s", line)
            return process.wait(), tail, result
        finally:
            if process.poll() is None:  # the reader stopped (an exception here): do not leave it running
                _kill_group(process, signal.SIGKILL)
                process.wait()
            with self._lock:
                self._process = None

    def terminate(self, grace: float = 10.0) -> None:
        """Stop a running DistCp (SIGTERM to its process group, SIGKILL after ``grace`` seconds). On YARN the
        MapReduce job may keep running: its id is in the log (``yarn application -kill``)."""
        with self._lock:
            self._terminated = True
            process = self._process
        if process is None or process.poll() is not None:
            return
        _kill_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            _kill_group(process, signal.SIGKILL)


def copy_with_distcp(
    mount: MountLike,
    migrator: Migrator,
    entries: Iterable[PlanEntry],
    distcp: DistCp,
    *,
    key_prefix: str,
    list_store: Store | None = None,
    concurrency: int = 8,
    s3a_from_connection: bool = True,
    orphans_under: str | None = None,
) -> list[CopyJob]:
    """Copy every file of ``entries`` lacking a copy with DistCp, one run per directory; return the jobs run.

    The file lists go to ``list_store`` (default: a local temporary directory, removed afterwards). Job
    properties: :func:`s3a_properties` of the STORE members, :func:`member_hadoop_properties` of every
    member of the policy, then ``distcp.properties``.
    """
    policy = migrator.policy
    defaults: dict[str, str] = {}
    for member in policy.store_members:
        defaults.update(s3a_properties(mount.members[member], from_connection=s3a_from_connection))
    defaults.update(member_hadoop_properties(mount, [*policy.remove_members, *policy.store_members]))
    if list_store is not None:  # the client reads the lists from there
        defaults.update(s3a_properties(list_store, from_connection=s3a_from_connection))
    with contextlib.ExitStack() as stack:
        if list_store is None:
            from airflow_hybrid.stores.local import LocalStore

            list_store = LocalStore(stack.enter_context(tempfile.TemporaryDirectory(prefix="distcp-lists-")))
        jobs = write_file_lists(mount, migrator, entries, list_store, key_prefix, per_directory=True,
                                concurrency=concurrency, uri=lambda u: hadoop_uri(u, distcp.s3_scheme),
                                orphans_under=orphans_under)
        if not jobs:
            log.info("Every file already has its copies; no DistCp run needed")
            return []
        for number, job in enumerate(jobs, 1):
            log.info("DistCp run %d of %d", number, len(jobs))
            distcp.run(job, defaults)
        return jobs


def _count(line: str, result: DistCpResult) -> None:
    if "DistCp job-id:" in line:
        result.job_id = line.rsplit(":", 1)[1].strip()
        return
    match = _COUNTER.match(line)
    if match:
        name = match.group(1).lower().replace(" ", "_")
        setattr(result, name, int(match.group(2)))


def _error_reason(lines: Sequence[str]) -> str:
    """DistCp's first ERROR line and the exception after it; else the last exception line."""
    lines = list(lines)
    for index, line in enumerate(lines):
        level = _HADOOP_LEVEL.match(line)
        if level and level.group(1) in ("ERROR", "FATAL"):
            message = line[level.end():].split(": ", 1)[-1].strip()
            following = next((x.strip() for x in lines[index + 1:index + 3] if _EXCEPTION.match(x.strip())), "")
            return _clip(f"{message}: {following}" if following else message)
    exceptions = [line.strip() for line in lines if _EXCEPTION.match(line.strip())]
    return _clip(exceptions[-1]) if exceptions else ""


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
