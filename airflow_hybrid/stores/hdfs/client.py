"""The WebHDFS connection of a store: an Airflow ``webhdfs`` connection, read by our rules, as a tuned session.

The connection is read here (namenodes, port, schema, login, password, extras), not by ``WebHDFSHook``: the
provider takes ``use_ssl: "false"`` for on and leaves TLS unverified without ``verify``. Its host may list HA
namenodes (``nn1,nn2``); the first that answers ``GETFILESTATUS /`` is the active one, the others follow for
failover. Authentication is ``user.name`` (simple auth, HTTP basic too with a password) or Kerberos SPNEGO to
the namenodes only (:mod:`airflow_hybrid.stores.hdfs.kerberos`). The HdfsCLI client (``InsecureClient``,
``KerberosClient``) is built on the same :class:`requests.Session` through its public constructors, for
callers who want HdfsCLI's API; the store speaks WebHDFS through the session.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import requests
import urllib3

from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.hdfs.kerberos import KerberosAuthError, KerberosLogin
from airflow_hybrid.values import parse_bool, parse_verify

log = logging.getLogger(__name__)

#: Sent on every request: clusters with ``dfs.webhdfs.rest-csrf.enabled`` refuse writes without it.
CSRF_HEADER = "X-XSRF-HEADER"
#: Extras handed to the SPNEGO auth (``requests_kerberos``).
_SPNEGO_EXTRAS = ("mutual_auth", "max_concurrency", "hostname_override", "service")
#: What a dropped, refused or timed-out connection raises (requests, urllib3, http.client, the OS).
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


#: Remote exceptions of a request the namenode refused before doing anything (so any request may be retried).
RETRIABLE_REMOTE = {"RetriableException", "StandbyException", "SafeModeException"}


class WebHdfsRemoteError(StoreError):
    """A WebHDFS ``RemoteException`` (or an HTTP error without one) that maps to no builtin error."""

    def __init__(self, message: str, status: int, exception: str | None, remote_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.remote_message = remote_message


def describe(error: BaseException | None) -> str:
    """``HTTP 403 AccessControlException: <message>`` for a remote error, ``<type>: <message>`` otherwise."""
    if isinstance(error, WebHdfsRemoteError):
        return " ".join(filter(None, [f"HTTP {error.status}", error.exception])) + f": {error.remote_message}"
    return f"{type(error).__name__}: {error}"


def tls_extras(extras: dict, conn_id: str) -> dict:
    """``extras`` with ``use_ssl`` and ``verify`` read once, by our rules (booleans, or a CA bundle path)."""
    raw = extras.get("use_ssl")
    use_ssl = raw is not None and parse_bool(raw, f"connection {conn_id!r}: extra use_ssl")
    verify = parse_verify(extras.get("verify", True), f"connection {conn_id!r}: extra verify")
    if use_ssl and verify is False:
        log.warning(
            "WebHDFS connection %r: TLS certificate verification is OFF (extra verify=false); the namenode's and "
            "data nodes' identity is not checked. Set verify to true or to a CA bundle path.",
            conn_id,
        )
    return {**extras, "use_ssl": use_ssl, "verify": verify}


def netrc_exists() -> bool:
    """Whether requests could find a netrc file (``$NETRC``, ``~/.netrc``, ``~/_netrc``)."""
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    return any(os.path.exists(os.path.expanduser(path)) for path in candidates)


def connect_failed(error: BaseException) -> bool:
    """Whether a transport error happened before the request reached the server (safe to retry)."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError) or isinstance(
        error, (requests.exceptions.ConnectTimeout, ConnectionRefusedError)
    )


def webhdfs_url(base: str, hdfs_path: str) -> str:
    """The REST URL of ``hdfs_path`` (absolute) on the namenode at ``base``."""
    return f"{base.rstrip('/')}/webhdfs/v1{quote(hdfs_path, safe='/')}"


def namenode_urls(namenodes: list[str], port: int | None, schema: str | None, *, use_ssl: bool) -> list[str]:
    """Base URLs of the namenodes: ``http(s)://<namenode>[:<port>][/<schema>]``."""
    scheme = "https" if use_ssl else "http"
    path = f"/{schema}" if schema else ""
    return [f"{scheme}://{host}:{port}{path}" if port else f"{scheme}://{host}{path}" for host in namenodes]


def tune_session(session: requests.Session) -> None:
    """The CSRF header, connection pools for many threads, and no per-request environment scan."""
    session.headers.setdefault(CSRF_HEADER, "airflow-hybrid")  # any value will do
    # Connections kept per host (namenode, each data node): more than the threads that share this store.
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # With trust_env, requests scans the environment for proxy settings and reads ~/.netrc on every
    # request and redirect (about a millisecond each with Airflow's large environment, as much CPU as
    # the rest of a small file's request). With no proxy variable and no netrc file there is nothing to
    # find; TLS verification is passed explicitly on every call, so the CA bundle variables play no part.
    if session.trust_env and not urllib.request.getproxies() and not netrc_exists():
        session.trust_env = False


@dataclass
class WebHdfsConnection:
    """What a store speaks WebHDFS through.

    :param urls: namenode base URLs, the active one first (rotated on failover).
    :param session: the authenticated session (``user.name`` or SPNEGO, TLS settings, CSRF header).
    :param client: an HdfsCLI client on ``session``.
    :param proxy_user: sent as ``doas`` with Kerberos (simple auth sends it as ``user.name``).
    :param kerberos: the connection's Kerberos login, if it has one.
    :param conn_id: the Airflow connection, for errors.
    :param answered: whether a namenode has answered yet. A connection to one namenode is not probed when it is
        made (a request saved per process); its first request stands for the probe (:meth:`first_failure`).
    """

    urls: deque[str]
    session: requests.Session
    client: Any
    proxy_user: str | None = None
    kerberos: KerberosLogin | None = None
    conn_id: str | None = None
    answered: bool = True

    def refusal(self, response: requests.Response) -> Exception | None:
        """The clear error for a namenode's HTTP 401 (Kerberos refused, or required but not configured)."""
        return unauthorized(response, urlparse(self.urls[0]).netloc, self.conn_id or "?", self.kerberos)

    def first_failure(self, error: BaseException | None) -> StoreError:
        """What a first request that reached no namenode raises: the probe's error."""
        tried = ", ".join(urlparse(url).netloc for url in self.urls)
        return StoreError(
            f"no WebHDFS namenode answered for connection {self.conn_id!r} (tried {tried}): {error}"
        )

    @classmethod
    def insecure(cls, url: str, user: str, session: requests.Session | None = None) -> WebHdfsConnection:
        """Simple auth as ``user`` to ``url`` (``;``-separated for HA namenodes), without an Airflow connection."""
        from hdfs import InsecureClient

        session = session or requests.Session()
        tune_session(session)
        client = InsecureClient(url, user=user, session=session)
        return cls(deque(client.urls), session, client)

    @classmethod
    def from_airflow(
        cls, conn_id: str, *, proxy_user: str | None, timeout: Any, where: str
    ) -> WebHdfsConnection:
        """Read the Airflow connection ``conn_id``, log in to Kerberos if it asks, and find an answering namenode.

        :param where: what the errors name first (the store's root URI).
        :raises StoreError: no such connection, no host, or no namenode answered.
        :raises KerberosAuthError: the login failed, or a namenode asks for Kerberos the connection lacks.
        """
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as error:
            raise StoreError(f"{where}: WebHDFS connection {conn_id!r} not found: {error}") from error
        if not conn.host:
            raise StoreError(f"{where}: connection {conn_id!r} has no namenode host")
        extras = tls_extras(conn.extra_dejson, conn_id)
        namenodes = [host.strip() for host in conn.host.split(",") if host.strip()]
        netlocs = [f"{host}:{conn.port}" if conn.port else host for host in namenodes]
        urls = namenode_urls(namenodes, conn.port, conn.schema, use_ssl=extras["use_ssl"])
        kerberos = KerberosLogin.from_extras(conn_id, extras)
        if kerberos is not None and kerberos.named:
            kerberos.login()  # a wrong principal, a missing keytab, an expired ticket: a clear error, here
        session = _session(conn, extras, netlocs, kerberos, proxy_user)

        def connection(active: list[str], answered: bool) -> WebHdfsConnection:
            if kerberos is not None:
                from hdfs.ext.kerberos import KerberosClient

                auth = session.auth  # KerberosClient sets HdfsCLI's own SPNEGO auth: ours answers namenodes only
                client = KerberosClient(";".join(active), session=session, proxy=proxy_user)
                session.auth = auth
            else:
                from hdfs import InsecureClient

                client = InsecureClient(";".join(active), user=session.params["user.name"], session=session)
            return cls(deque(client.urls), session, client, proxy_user if kerberos else None, kerberos, conn_id,
                       answered)

        if len(urls) == 1:
            return connection(urls, answered=False)  # nothing to choose between: the first request probes
        for namenode, url in zip(namenodes, urls, strict=True):
            if _answers(session, url, namenode, timeout, conn_id, kerberos):
                return connection([url, *(other for other in urls if other != url)], answered=True)
        session.close()
        raise StoreError(
            f"{where}: no WebHDFS namenode answered for connection {conn_id!r} (tried {', '.join(netlocs)})"
        )


def _session(
    conn: Any, extras: dict, netlocs: list[str], kerberos: KerberosLogin | None, proxy_user: str | None
) -> requests.Session:
    """The session of a connection: TLS (verification, client certificate), cookies, headers, authentication."""
    import getpass

    session = requests.Session()
    if extras["use_ssl"]:
        cert, key = extras.get("cert"), extras.get("key")
        if cert:
            session.cert = (cert, key) if key else cert
    session.verify = extras["verify"]
    if extras.get("cookies"):
        session.cookies.update(extras["cookies"])
    if extras.get("headers"):
        session.headers.update(extras["headers"])
    if kerberos is not None:
        session.auth = kerberos.auth(set(netlocs), **{key: extras[key] for key in _SPNEGO_EXTRAS if key in extras})
    else:
        if conn.password is not None:
            session.auth = (conn.login, conn.password)
        session.params = {"user.name": proxy_user or conn.login or getpass.getuser()}
    tune_session(session)
    return session


def _answers(
    session: requests.Session, url: str, namenode: str, timeout: Any, conn_id: str, kerberos: KerberosLogin | None
) -> bool:
    """Whether ``namenode`` (at ``url``) answers ``GETFILESTATUS /``; a 401 is an authentication error."""
    try:
        probe = session.get(
            webhdfs_url(url, "/"), params={"op": "GETFILESTATUS"}, timeout=timeout, verify=session.verify
        )
    except TRANSPORT_ERRORS as error:
        log.warning("namenode %s of connection %s failed: %s", namenode, conn_id, error)
        return False
    probe.close()
    refusal = unauthorized(probe, namenode, conn_id, kerberos)
    if refusal is not None:
        raise refusal
    if probe.status_code >= 400:
        log.warning("namenode %s of connection %s failed: HTTP %d: %s", namenode, conn_id, probe.status_code,
                    probe.text[:200])
        return False
    return True


def unauthorized(
    response: requests.Response, namenode: str, conn_id: str, kerberos: KerberosLogin | None
) -> Exception | None:
    """The error for a namenode's HTTP 401: the Kerberos login refused, or Kerberos required by the namenode
    but not configured in the connection; ``None`` for any other answer."""
    if response.status_code != 401:
        return None
    if kerberos is not None:
        return kerberos.refused(f"HTTP 401 from {namenode}: {response.text[:200].strip()}")
    if "negotiate" in response.headers.get("WWW-Authenticate", "").lower():
        return KerberosAuthError(
            f"WebHDFS connection {conn_id!r}: namenode {namenode} requires Kerberos (SPNEGO), "
            "but the connection has none: set the extras kerberos_principal and kerberos_keytab"
        )
    return None
