"""Kerberos for WebHDFS connections: a login of each store's own, and SPNEGO that answers the namenodes only.

Extras of a ``webhdfs`` connection (any of them turns Kerberos on; ``auth: kerberos`` alone uses the default
ticket cache, as :class:`~airflow.providers.apache.hdfs.hooks.webhdfs.WebHDFSHook` does):

``kerberos_principal``  the client principal, e.g. ``etl@EXAMPLE.COM`` (``_HOST`` is this host's name); with a
                        keytab and no principal, the keytab's first one.
``kerberos_keytab``     its keytab: the store logs in from it (``kinit -kt``) into a credential cache of its own
                        (``MEMORY:``, never the user's default one) and again before the ticket expires.
``kerberos_ccache``     a ticket cache to use instead (kept by ``kinit`` or ``airflow kerberos``); with a keytab,
                        where the store keeps its tickets.
``krb5_conf``           the realm's ``krb5.conf``, added to ``KRB5_CONFIG`` (one per process, as for MIT Kerberos).

With Airflow's ``[core] security = kerberos`` a connection without a principal of its own logs in as
``[kerberos] principal`` with ``[kerberos] keytab`` (if readable), else from ``[kerberos] ccache``, the cache
``airflow kerberos`` renews.

A WebHDFS namenode answers an authenticated request with a redirect to a data node that carries a delegation
token (``delegation=``); the data node is not sent SPNEGO (nor the namenode's ``Authorization`` header or
cookie: requests drops them for another host), only the token in the URL.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from airflow_hybrid.stores.base import StoreError

#: The connection extras that turn Kerberos on.
EXTRAS = ("kerberos_principal", "kerberos_keytab", "kerberos_ccache", "krb5_conf")
#: Log in again when the ticket has less than this left (seconds).
RENEW_BEFORE = 300.0
_krb5_conf_lock = threading.Lock()


class KerberosAuthError(StoreError, PermissionError):
    """A connection's Kerberos login failed (principal, keytab, ticket) or the namenode refused it."""


def use_krb5_conf(path: str) -> None:
    """Put ``path`` first in ``KRB5_CONFIG`` (MIT Kerberos reads it, a ``:``-separated list, per context)."""
    with _krb5_conf_lock:
        current = [p for p in os.environ.get("KRB5_CONFIG", "").split(os.pathsep) if p]
        if path not in current:
            os.environ["KRB5_CONFIG"] = os.pathsep.join([path, *current])


def _airflow_kerberos() -> dict[str, str] | None:
    """``[kerberos]`` principal, keytab and ccache when ``[core] security`` is ``kerberos``."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency
        return None
    if conf.get("core", "security", fallback="") != "kerberos":
        return None
    return {key: conf.get("kerberos", key, fallback="") for key in ("principal", "keytab", "ccache")}


@dataclass
class KerberosLogin:
    """The Kerberos identity of one store: who it is, where its key is, and the ticket cache it uses."""

    conn_id: str
    principal: str | None = None
    keytab: str | None = None
    ccache: str | None = None  # None: the default ticket cache (only without a keytab)
    krb5_conf: str | None = None
    _expires: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_extras(cls, conn_id: str, extras: dict[str, Any]) -> KerberosLogin | None:
        """The login a connection asks for (its extras, else Airflow's global Kerberos setting); ``None``: none."""
        given = {key: str(extras[key]).strip() for key in EXTRAS if extras.get(key) not in (None, "")}
        asked = bool(given) or str(extras.get("auth", "")).strip().lower() == "kerberos"
        airflow = _airflow_kerberos()
        if not asked and airflow is None:
            return None
        # ``principal``: the name HdfsCLI's KerberosClient (and so the extras of older set-ups) give it.
        principal = given.get("kerberos_principal") or (str(extras["principal"]) if extras.get("principal") else None)
        keytab, ccache = given.get("kerberos_keytab"), given.get("kerberos_ccache")
        if airflow is not None and principal is None and keytab is None and ccache is None:
            principal = airflow["principal"] or None
            if airflow["keytab"] and os.access(airflow["keytab"], os.R_OK):
                keytab = airflow["keytab"]
            else:
                ccache = airflow["ccache"] or None
        if principal and "_HOST" in principal:
            principal = principal.replace("_HOST", socket.getfqdn().lower())
        if keytab and not ccache:
            ccache = f"MEMORY:airflow-hybrid-{uuid.uuid4().hex}"
        if ccache and ":" not in ccache.split("/", 1)[0]:
            ccache = f"FILE:{ccache}"
        return cls(conn_id, principal, keytab, ccache, given.get("krb5_conf"))

    @property
    def named(self) -> bool:
        """Whether the connection names its identity (else: the default ticket cache, checked when asked for)."""
        return bool(self.principal or self.keytab or self.ccache)

    # -- logging in ---------------------------------------------------------------------------------
    def _fail(self, what: str, *others: str) -> KerberosAuthError:
        """The error naming the connection and its extras, never the principal or the keytab's path (task logs
        are widely read): they show as ``<kerberos_principal>`` / ``<kerberos_keytab>``, ``others`` as
        ``<principal>``."""
        who = "the connection's kerberos_principal" if self.principal else "the default principal"
        text = f"WebHDFS connection {self.conn_id!r}: Kerberos login as {who}: {what}"
        masks = [(self.principal, "<kerberos_principal>"), (self.keytab, "<kerberos_keytab>")]
        masks += [(other, "<principal>") for other in others]
        for secret, shown in sorted((m for m in masks if m[0]), key=lambda m: -len(m[0])):
            text = text.replace(secret, shown)
        return KerberosAuthError(text)

    def login(self) -> None:
        """Get (or check) the ticket now: a clear :class:`KerberosAuthError` for a wrong principal, a missing or
        unreadable keytab, an unknown realm, or an expired or missing ticket."""
        with self._lock:
            self._login()

    def ensure(self) -> None:
        """:meth:`login` again when the ticket is about to expire (cheap otherwise)."""
        if time.time() > self._expires - RENEW_BEFORE:
            self.login()

    def _login(self) -> None:
        if self.krb5_conf:
            if not os.path.isfile(self.krb5_conf):
                raise self._fail(f"krb5.conf {self.krb5_conf} does not exist (connection extra krb5_conf)")
            use_krb5_conf(self.krb5_conf)
        if self.keytab:
            self._expires = self._kinit()
        else:
            self._expires = self._check_cache()

    def _kinit(self) -> float:
        """``kinit -kt keytab principal`` into :attr:`ccache`; the ticket's end time."""
        import krb5

        keytab = self.keytab or ""
        if not os.path.isfile(keytab):
            raise self._fail(f"keytab {keytab} does not exist (connection extra kerberos_keytab)")
        if not os.access(keytab, os.R_OK):
            raise self._fail(f"keytab {keytab} is not readable by this process (connection extra kerberos_keytab)")
        try:
            ctx = krb5.init_context()
            table = krb5.kt_resolve(ctx, f"FILE:{keytab}".encode())
            held = sorted({entry.principal.name.decode() for entry in table})
            if not held:
                raise self._fail(f"keytab {keytab} holds no key")
            wanted = krb5.parse_name_flags(ctx, (self.principal or held[0]).encode())
            name = wanted.name.decode()
            if name not in held:
                raise self._fail(f"keytab {keytab} holds no key for {name} (it holds keys of {len(held)} other "
                                 f"principal(s))", name, *held)
            self.principal = name
            options = krb5.get_init_creds_opt_alloc(ctx)
            krb5.get_init_creds_opt_set_canonicalize(options, True)
            creds = krb5.get_init_creds_keytab(ctx, wanted, options, keytab=table)
            cache = krb5.cc_resolve(ctx, (self.ccache or "").encode())
            krb5.cc_initialize(ctx, cache, creds.client)
            krb5.cc_store_cred(ctx, cache, creds)
        except krb5.Krb5Error as error:
            raise self._fail(f"the KDC refused the keytab {keytab}: {error}") from error
        return float(creds.times.endtime)

    def _check_cache(self) -> float:
        """A valid ticket of :attr:`principal` in :attr:`ccache` (or the default cache); its end time."""
        import gssapi

        name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal) if self.principal else None
        where = self.ccache or "the default ticket cache"
        try:
            if self.ccache:
                creds = gssapi.Credentials(name=name, usage="initiate", store={"ccache": self.ccache})
            else:
                creds = gssapi.Credentials(name=name, usage="initiate")
            lifetime = creds.lifetime
        except gssapi.exceptions.ExpiredCredentialsError as error:
            raise self._fail(
                f"the ticket in {where} has expired (renew it with kinit or `airflow kerberos`, or give the "
                "connection a kerberos_keytab)"
            ) from error
        except gssapi.exceptions.GSSError as error:
            raise self._fail(f"no usable ticket in {where}: {error.gen_message()}") from error
        if not lifetime:
            raise self._fail(f"the ticket in {where} has expired (renew it with kinit or `airflow kerberos`)")
        if not self.principal:
            self.principal = str(creds.name)
        return time.time() + lifetime

    def refused(self, message: str) -> KerberosAuthError:
        """The error for a namenode's 401: the login's own problem if it has one now, else the refusal."""
        try:
            self.login()
        except KerberosAuthError as error:
            return error
        return self._fail(f"the namenode refused SPNEGO ({message})")

    # -- SPNEGO -------------------------------------------------------------------------------------
    def spnego_credential(self) -> Any:
        """What ``requests_kerberos`` passes to pyspnego: this login's ticket cache (or the default one)."""
        if self.ccache is None:
            return self.principal
        import spnego

        return spnego.KerberosCCache(self.ccache, self.principal)

    def auth(self, namenodes: set[str], **options: Any) -> Any:
        """A ``requests`` auth doing SPNEGO with this login's tickets, to ``namenodes`` (``host:port``) only."""
        return _namenode_auth_class()(self, namenodes, **options)


_AUTH_CLASS: type | None = None


def _namenode_auth_class() -> type:
    """:class:`NamenodeSpnegoAuth`, built on first use (``hdfs.ext.kerberos`` imports requests-kerberos)."""
    global _AUTH_CLASS
    if _AUTH_CLASS is not None:
        return _AUTH_CLASS
    import requests_kerberos
    from hdfs.ext.kerberos import _HdfsHTTPKerberosAuth

    class NamenodeSpnegoAuth(_HdfsHTTPKerberosAuth):
        """HdfsCLI's throttled SPNEGO auth, thread-safe, for the namenodes only, logging in again in time.

        requests-kerberos keeps one security context per host in a dict shared by all threads; two threads
        authenticating to the same namenode would step each other's context, so contexts are per thread here.
        Responses from any other host (a data node reached by a redirect, with a delegation token) pass
        through untouched: no SPNEGO is attempted against them.
        """

        def __init__(
            self,
            login: KerberosLogin,
            namenodes: set[str],
            max_concurrency: int = 1,
            mutual_auth: str = "OPTIONAL",
            **kwargs: Any,
        ) -> None:
            self._local = threading.local()
            self.login = login
            self.namenodes = {netloc.lower() for netloc in namenodes}
            mutual = getattr(requests_kerberos, str(mutual_auth).upper(), None)
            if not isinstance(mutual, int):
                raise KerberosAuthError(
                    f"WebHDFS connection {login.conn_id!r}: extra mutual_auth must be REQUIRED, OPTIONAL or "
                    f"DISABLED, got {mutual_auth!r}"
                )
            super().__init__(
                int(max_concurrency),
                mutual_authentication=mutual,
                principal=login.spnego_credential(),
                **kwargs,
            )

        @property
        def _context(self) -> dict:
            contexts = getattr(self._local, "contexts", None)
            if contexts is None:
                contexts = self._local.contexts = {}
            return contexts

        @_context.setter
        def _context(self, value: dict) -> None:
            self._local.contexts = value

        def handle_response(self, response: Any, **kwargs: Any) -> Any:
            if urlparse(response.url).netloc.lower() not in self.namenodes:
                return response  # a data node: the redirect's delegation token authenticates
            return super().handle_response(response, **kwargs)

        def generate_request_header(self, response: Any, host: str, is_preemptive: bool = False) -> str:
            self.login.ensure()
            return super().generate_request_header(response, host, is_preemptive)

    _AUTH_CLASS = NamenodeSpnegoAuth
    return _AUTH_CLASS
