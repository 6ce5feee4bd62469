"""DuckDB's own S3 client (the ``httpfs`` extension) for the files of a query that live on S3.

When a query starts, the files of a table that are served by an S3 member, or have a fresh copy in a shared S3
cache tier, are handed to DuckDB as ``s3://bucket/key`` (:mod:`airflow_hybrid.query.native`) and read by
``httpfs``, not through the Python bridge. This module sets that up and checks it afterwards:

* **the extension** comes from the ``duckdb-extension-httpfs`` wheel pinned to the installed DuckDB and is
  loaded from its file (no download, no ``INSTALL``; autoloading stays off);
* **one secret per S3 store** (``CREATE SECRET ... (TYPE s3, SCOPE 's3://bucket/prefix')``), built from the
  store's Airflow ``aws`` connection through the amazon provider's ``AwsBaseHook``: its frozen credentials
  (key, secret, session token: assumed roles and web identities included, valid for the query), region,
  endpoint (a custom one, e.g. moto or SeaweedFS, as ``host:port`` with path-style URLs and ``USE_SSL`` by its
  scheme) and TLS verification. Credentials only reach DuckDB's statement: they are never logged, and an error
  creating a secret is reported without its text. A store whose connection ``httpfs`` cannot follow (no
  connection, e.g. a store built on a ready client; no credentials; a proxy; conflicting CA bundles) is read
  through the bridge, with a log line saying why;
* **the versions read.** ``httpfs`` compares the ETag of every ranged read of a file with the one its first
  request saw (and fails the query if it changed), but it cannot be told which version to expect. So DuckDB's
  HTTP log is kept for the query (``enable_logging('HTTP')``, in memory) and checked once it finished
  (:meth:`HttpfsAccess.verify`, no request): every answer DuckDB got for a file must carry the ETag (and for a
  ``HEAD``, the length) that the query's listing named. A file rewritten between planning and reading is found
  there; one rewritten or removed while DuckDB reads it fails the query. Either way the caller runs the query
  again through the bridge (:class:`~airflow_hybrid.query.duckdb_engine.DuckDBQuery`), never returning what the
  other version gave.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import duckdb

from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.query.extensions import wheel_extension_path
from airflow_hybrid.query.sql import sql_literal, sql_string
from airflow_hybrid.values import parse_verify

if TYPE_CHECKING:
    from airflow_hybrid.stores.base import Store

log = logging.getLogger(__name__)


class HttpfsUnavailableError(HybridError, RuntimeError):
    """The httpfs extension wheel is missing or does not match the installed DuckDB."""


#: DuckDB version -> its httpfs extension file, once found (the wheel's metadata costs ~2 ms per look-up, which
#: every planned query would pay)
_found_extensions: dict[str, Path] = {}


def httpfs_extension_path() -> Path:
    """Path of ``httpfs.duckdb_extension`` in the ``duckdb-extension-httpfs`` wheel for the installed DuckDB.

    :raises HttpfsUnavailableError: the wheel is not installed, or was built for another DuckDB version.
    """
    version = duckdb.__version__
    if (path := _found_extensions.get(version)) is None:
        path = _found_extensions[version] = wheel_extension_path("httpfs", HttpfsUnavailableError)
    return path


@dataclass(frozen=True)
class S3Target:
    """One file DuckDB reads with httpfs: where, and which version the query's listing named."""

    bucket: str
    key: str
    size: int
    #: the listed ETag (without quotes); ``None`` for a cache copy, whose location is written once
    etag: str | None
    #: the logical path (``hybrid://`` mount-relative) it stands for
    path: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Secret:
    """What ``CREATE SECRET`` gets for one store (the credentials are not shown in ``repr``)."""

    scope: str
    region: str | None
    endpoint: str | None
    url_style: str
    use_ssl: bool
    verify: bool | str
    key_id: str
    secret: str
    session_token: str | None

    def __repr__(self) -> str:
        return f"S3Secret(scope={self.scope!r}, endpoint={self.endpoint!r}, region={self.region!r}, key_id=***)"

    def statement(self, name: str) -> str:
        options = [
            "TYPE s3",
            f"KEY_ID {sql_literal(self.key_id)}",
            f"SECRET {sql_literal(self.secret)}",
            f"URL_STYLE {sql_literal(self.url_style)}",
            f"USE_SSL {'true' if self.use_ssl else 'false'}",
            f"SCOPE {sql_literal(self.scope)}",
        ]
        if self.session_token:
            options.append(f"SESSION_TOKEN {sql_literal(self.session_token)}")
        if self.region:
            options.append(f"REGION {sql_literal(self.region)}")
        if self.endpoint:
            options.append(f"ENDPOINT {sql_literal(self.endpoint)}")
        return f"CREATE OR REPLACE TEMPORARY SECRET {name} ({', '.join(options)})"


def secret_from_connection(aws_conn_id: str, scope: str) -> S3Secret:
    """The secret for ``scope`` (``s3://bucket/prefix``) from Airflow connection ``aws_conn_id``.

    :raises HttpfsUnavailableError: the connection uses something httpfs cannot do (the reason is the message).
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    config = hook.conn_config
    botocore_config = config.botocore_config
    if botocore_config is not None and getattr(botocore_config, "proxies", None):
        raise HttpfsUnavailableError(f"connection {aws_conn_id!r} sets proxies")
    try:
        credentials = hook.get_credentials(region_name=hook.region_name)
    except Exception as err:  # no credential source, an assume-role that failed ...; the bridge reports it
        raise HttpfsUnavailableError(
            f"connection {aws_conn_id!r} gave no credentials ({type(err).__name__})"
        ) from None
    if credentials is None or not credentials.access_key or not credentials.secret_key:
        raise HttpfsUnavailableError(f"connection {aws_conn_id!r} has no static or temporary credentials")
    addressing = ((getattr(botocore_config, "s3", None) or {}).get("addressing_style") or "auto").lower()
    endpoint_url = config.get_service_endpoint_url("s3")
    endpoint, use_ssl = None, True
    if endpoint_url:
        parts = urlsplit(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        if parts.path.strip("/"):
            raise HttpfsUnavailableError(f"connection {aws_conn_id!r}: endpoint_url has a path")
        endpoint, use_ssl = parts.netloc, parts.scheme.lower() != "http"
        url_style = "vhost" if addressing == "virtual" else "path"
    else:
        url_style = "path" if addressing == "path" else "vhost"
    verify = parse_verify(config.verify, f"connection {aws_conn_id!r}: extra verify", default=True)
    return S3Secret(
        scope=scope,
        region=hook.region_name or None,
        endpoint=endpoint,
        url_style=url_style,
        use_ssl=use_ssl,
        verify=True if verify is None else verify,
        key_id=credentials.access_key,
        secret=credentials.secret_key,
        session_token=credentials.token or None,
    )


@dataclass(frozen=True)
class Mismatch:
    """A file DuckDB read another version of (or whose answers could not be checked)."""

    target: S3Target
    reason: str


class HttpfsAccess:
    """Which S3 stores DuckDB reads with httpfs in one query, the connection set-up, and the check afterwards.

    :meth:`target` is asked by the planner per file (the decision per store is cached; a refusal is logged once
    with its reason);
    :meth:`configure` loads the extension and creates the secrets of the stores that were used;
    :meth:`verify` checks DuckDB's HTTP log against the listed versions of the targets.
    """

    def __init__(self) -> None:
        self._secrets: dict[str, S3Secret] = {}  # scope -> secret
        self._decided: dict[int, str | None] = {}  # id(store) -> scope, or None (refused)
        self._used: set[str] = set()
        self._verify: bool | str | None = None
        self._lock = threading.Lock()
        self._extension: Path | None = None
        self.unavailable: str | None = None
        try:
            self._extension = httpfs_extension_path()
        except HttpfsUnavailableError as err:
            self.unavailable = str(err)
            log.info("S3 files are read through hybrid://: %s", err)

    def scope_of(self, store: Store) -> str | None:
        """The secret's scope for ``store`` when httpfs can read it (an S3 store with a usable connection; the
        store counts as used from then on), else ``None``."""
        if self._extension is None or getattr(store, "scheme", None) != "s3":
            return None
        with self._lock:
            if id(store) in self._decided:
                scope = self._decided[id(store)]
                if scope is not None:
                    self._used.add(scope)
                return scope
            scope = self._decide(store)
            self._decided[id(store)] = scope
            if scope is not None:
                self._used.add(scope)
            return scope

    def _decide(self, store: Store) -> str | None:
        prefix = getattr(store, "prefix", "")
        scope = f"s3://{store.bucket}/{prefix}/" if prefix else f"s3://{store.bucket}/"
        conn_id = getattr(store, "aws_conn_id", None)
        if not conn_id or getattr(store, "_owns_client", True) is False:
            log.info("%s is read through hybrid://: the store has no Airflow connection httpfs could use "
                     "(built on a ready client)", scope)
            return None
        try:
            secret = secret_from_connection(conn_id, scope)
        except HttpfsUnavailableError as err:
            log.info("%s is read through hybrid://: %s", scope, err)
            return None
        if self._verify is not None and secret.verify != self._verify:
            log.info("%s is read through hybrid://: its TLS verification (%s) differs from another S3 store's "
                     "in this query (one setting per DuckDB connection)", scope, _shown_verify(secret.verify))
            return None
        self._verify = secret.verify
        self._secrets[scope] = secret
        return scope

    def target(self, store: Store, rel: str, size: int, etag: str | None, path: str) -> S3Target | None:
        """The httpfs target of file ``rel`` of ``store`` (``None``: read it through the bridge)."""
        if self.scope_of(store) is None:
            return None
        prefix = getattr(store, "prefix", "")
        key = f"{prefix}/{rel}" if prefix else rel
        return S3Target(store.bucket, key, int(size), etag.strip('"') if etag else None, path)

    @property
    def used(self) -> bool:
        return bool(self._used)

    def configure(self, con: duckdb.DuckDBPyConnection) -> None:
        """Load httpfs into ``con`` and create the secrets of the stores in use (then :meth:`start_log`).

        :raises HttpfsUnavailableError: the extension did not load or DuckDB refused a secret.
        """
        if not self._used:
            return
        assert self._extension is not None
        try:
            con.execute(f"LOAD '{sql_string(str(self._extension))}'")
        except duckdb.Error as err:
            raise HttpfsUnavailableError(f"cannot load {self._extension}: {err}") from err
        verify = self._verify if self._verify is not None else True
        con.execute(f"SET enable_server_cert_verification = {'false' if verify is False else 'true'}")
        if isinstance(verify, str):
            con.execute(f"SET ca_cert_file = {sql_literal(verify)}")
        for i, scope in enumerate(sorted(self._used)):
            try:
                con.execute(self._secrets[scope].statement(f"hybrid_s3_{i}"))
            except duckdb.Error as err:  # the statement holds the credentials: not quoted
                raise HttpfsUnavailableError(
                    f"DuckDB refused the S3 secret for {scope} ({type(err).__name__})"
                ) from None

    @staticmethod
    def start_log(con: duckdb.DuckDBPyConnection) -> None:
        """Keep DuckDB's HTTP log (in memory) for :meth:`verify`; call it after any settings (so none turns it
        off) and before anything reads a file (binding a view reads a footer)."""
        con.execute("CALL enable_logging('HTTP', storage = 'memory')")

    def verify(self, con: duckdb.DuckDBPyConnection, targets: list[S3Target]) -> list[Mismatch]:
        """The targets DuckDB got another version of, from its HTTP log (no request is made): every answer
        for a target must carry its listed ETag (quotes aside), a ``HEAD`` its size too, and all of one
        target's answers the same ETag."""
        if not targets:
            return []
        logging_on, types = con.execute(
            "SELECT current_setting('enable_logging'), current_setting('enabled_log_types')").fetchone()
        if not logging_on or "HTTP" not in str(types).split(","):
            return [Mismatch(t, "DuckDB's HTTP log was off: the versions read cannot be checked") for t in targets]
        by_path = {(t.bucket, t.key): t for t in targets}
        rows = con.execute(
            "SELECT request.type, request.url, response.status, "
            "list_filter(map_entries(response.headers), e -> lower(e.key) = 'etag'), "
            "list_filter(map_entries(response.headers), e -> lower(e.key) = 'content-length') "
            "FROM duckdb_logs_parsed('HTTP')"
        ).fetchall()
        seen: dict[tuple[str, str], set[str | None]] = {}
        problems: dict[tuple[str, str], str] = {}
        for method, url, status, etags, lengths in rows:
            where = _bucket_key(url, by_path)
            if where is None:
                continue
            target = by_path[where]
            if not str(status or "").startswith(("OK_200", "PartialContent_206")):
                continue  # a failed request: DuckDB retried it or failed the query
            etag = etags[0]["value"].strip('"') if etags else None
            seen.setdefault(where, set()).add(etag)
            if target.etag is not None and etag != target.etag:
                problems[where] = f"DuckDB read ETag {etag}, the listing named {target.etag}"
            elif method == "HEAD" and lengths and int(lengths[0]["value"]) != target.size:
                problems[where] = f"DuckDB saw {lengths[0]['value']} bytes, the listing named {target.size}"
        for where, etags in seen.items():
            if len(etags) > 1 and where not in problems:
                problems[where] = f"DuckDB's answers carried several ETags ({', '.join(map(str, sorted(etags, key=str)))})"
        return [Mismatch(by_path[where], reason) for where, reason in problems.items()]


def _bucket_key(url: str, by_path: dict[tuple[str, str], S3Target]) -> tuple[str, str] | None:
    """``(bucket, key)`` of a logged request URL, path-style or virtual-hosted, if it is a target's."""
    parts = urlsplit(url)
    path = unquote(parts.path).lstrip("/")
    bucket, _, key = path.partition("/")
    if (bucket, key) in by_path:
        return bucket, key
    host_bucket = (parts.hostname or "").split(".", 1)[0]
    if (host_bucket, path) in by_path:
        return host_bucket, path
    return None


def _shown_verify(verify: Any) -> str:
    return "a CA bundle" if isinstance(verify, str) else str(verify).lower()
