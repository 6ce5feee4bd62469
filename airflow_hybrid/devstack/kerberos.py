"""An embedded Kerberos KDC (Hadoop's MiniKdc, on Apache Kerby) on a free loopback port, for a Kerberized HDFS.

::

    with MiniKdc(base_dir, users=("alice",)) as kdc:
        kdc.krb5_conf                 # the realm's krb5.conf (KRB5_CONFIG for Python, java.security.krb5.conf)
        kdc.keytab("alice")           # a keytab holding only alice@EXAMPLE.COM
        kdc.service_keytab            # hdfs/localhost and HTTP/localhost, for the NameNode and DataNode
        kdc.login("alice")            # a FILE ccache with a ticket of alice's (for Java clients, tests)

One JVM runs ``org.apache.hadoop.minikdc.MiniKdc``'s ``main`` (from ``jvm/pom.xml``): it creates the principals,
writes one keytab of them all, and serves until it is stopped. That keytab is split here (with ``krb5``, the
Python binding of MIT Kerberos) into one keytab for the services and one per user, as a site's admin hands them
out. Principals have no instance but the services' ``/localhost``; everything stays in ``base_dir``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.hadoop import HadoopError, hadoop_classpath, java_command
from airflow_hybrid.devstack.processes import free_ports

_MAIN = "org.apache.hadoop.minikdc.MiniKdc"
_READY = "Standalone MiniKdc Running"
#: The service principals of a one-host Hadoop: RPC (NameNode, DataNode) and SPNEGO (WebHDFS).
SERVICES = ("hdfs/localhost", "HTTP/localhost")


class KdcError(HadoopError):
    """The KDC could not be started, or a keytab or ticket of it could not be made."""


class MiniKdc(processes.Service):
    """A KDC for ``realm`` with the :data:`SERVICES` principals and ``users``, stopped by whoever started it.

    :param base_dir: the KDC's work directory, ``krb5.conf``, keytabs, ccaches and ``kdc.log``.
    :param users: user principals (``alice`` is ``alice@<realm>``), each with a keytab of its own.
    :param realm: ``ORG.DOMAIN`` (MiniKdc builds the realm from these two parts).
    :param max_ticket_lifetime: seconds (MiniKdc's default is a day).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        *,
        users: Iterable[str] = ("alice",),
        realm: str = "EXAMPLE.COM",
        max_ticket_lifetime: int = 86_400,
        heap: str = "128m",
        java_home: str | None = None,
    ) -> None:
        org, _, domain = realm.partition(".")
        if not org or not domain or "." in domain:
            raise ValueError(f"MiniKdc realms have two parts (ORG.DOMAIN), got {realm!r}")
        self.base_dir = Path(base_dir).resolve()
        self.users = tuple(users)
        self.realm = realm.upper()
        self.max_ticket_lifetime = max_ticket_lifetime
        self.heap = heap
        self.java_home = java_home
        self.port = 0
        self._process: subprocess.Popen | None = None

    # -- what clients and servers use ---------------------------------------------------------------
    @property
    def krb5_conf(self) -> Path:
        return self.base_dir / "krb5.conf"

    @property
    def service_keytab(self) -> Path:
        return self.base_dir / "services.keytab"

    def keytab(self, user: str) -> Path:
        """The keytab of ``user`` alone."""
        return self.base_dir / f"{user.replace('/', '_')}.keytab"

    def principal(self, name: str) -> str:
        """``name@REALM`` (``name`` may already carry the realm)."""
        return name if "@" in name else f"{name}@{self.realm}"

    def environ(self) -> dict[str, str]:
        """What a process needs to use this realm: ``KRB5_CONFIG``."""
        return {"KRB5_CONFIG": str(self.krb5_conf)}

    def login(self, name: str, ccache: str | os.PathLike | None = None, lifetime: int | None = None) -> Path:
        """A FILE ccache holding a fresh TGT of ``name`` from its keytab (``kinit -kt``); its path."""
        import krb5

        path = Path(ccache) if ccache else self.base_dir / "ccache" / name.replace("/", "_")
        path.parent.mkdir(parents=True, exist_ok=True)
        keytab = self.service_keytab if name in SERVICES else self.keytab(name)
        previous = os.environ.get("KRB5_CONFIG")
        os.environ["KRB5_CONFIG"] = str(self.krb5_conf)
        try:
            ctx = krb5.init_context()
            principal = krb5.parse_name_flags(ctx, self.principal(name).encode())
            options = krb5.get_init_creds_opt_alloc(ctx)
            if lifetime is not None:
                krb5.get_init_creds_opt_set_tkt_life(options, lifetime)
            creds = krb5.get_init_creds_keytab(
                ctx, principal, options, keytab=krb5.kt_resolve(ctx, f"FILE:{keytab}".encode())
            )
            cache = krb5.cc_resolve(ctx, f"FILE:{path}".encode())
            krb5.cc_initialize(ctx, cache, creds.client)
            krb5.cc_store_cred(ctx, cache, creds)
        except krb5.Krb5Error as error:
            raise KdcError(f"cannot get a ticket for {self.principal(name)} from {keytab}: {error}") from error
        finally:
            if previous is None:
                os.environ.pop("KRB5_CONFIG", None)
            else:
                os.environ["KRB5_CONFIG"] = previous
        return path

    def state(self) -> dict[str, object]:
        return {"realm": self.realm, "port": self.port, "krb5_conf": str(self.krb5_conf)}

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> MiniKdc:
        """Start the KDC JVM, wait until it has made its principals, and write ``krb5.conf`` and the keytabs."""
        if self._process is not None:
            return self
        java = java_command(self.java_home)
        classpath = hadoop_classpath()
        work = self.base_dir / "kdc"
        work.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1, "127.0.0.1")
        org, _, domain = self.realm.partition(".")
        properties = work / "kdc.properties"
        properties.write_text(
            f"org.name={org}\norg.domain={domain}\nkdc.bind.address=localhost\nkdc.port={self.port}\n"
            f"max.ticket.lifetime={self.max_ticket_lifetime * 1000}\ntransport=TCP\n"
        )
        everyone = work / "all.keytab"
        everyone.unlink(missing_ok=True)
        log = self.base_dir / "kdc.log"
        self._process = processes.spawn(  # a killed test run leaves no KDC behind
            [
                java, f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true", "-cp",
                classpath, _MAIN, str(work), str(properties), str(everyone), *SERVICES, *self.users,
            ],
            log,
        )  # fmt: skip
        try:
            processes.wait_ready(
                lambda: _READY in log.read_text(errors="replace"),
                {"MiniKdc": self._process},
                timeout,
                exited=lambda _, code: KdcError(f"MiniKdc exited with {code}:\n{self.log_tail()}"),
                timed_out=lambda: KdcError(f"MiniKdc did not start in {timeout:.0f} s:\n{self.log_tail()}"),
            )
            self._write_krb5_conf()
            self._split_keytab(everyone)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            processes.stop([process], timeout)

    def log_tail(self, chars: int = 3000) -> str:
        path = self.base_dir / "kdc.log"
        return f"--- {path} ---\n{path.read_text(errors='replace')[-chars:]}" if path.exists() else ""

    # -- internals ----------------------------------------------------------------------------------
    def _write_krb5_conf(self) -> None:
        # Names are used as written (no DNS canonicalisation, no reverse lookup): HTTP/localhost stays itself.
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    udp_preference_limit = 1\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            "    forwardable = true\n"
            "[realms]\n"
            f"    {self.realm} = {{\n        kdc = 127.0.0.1:{self.port}\n    }}\n"
            "[domain_realm]\n"
            f"    localhost = {self.realm}\n"
        )

    def _split_keytab(self, everyone: Path) -> None:
        """One keytab for :data:`SERVICES`, one per user, from MiniKdc's keytab of them all."""
        import krb5

        ctx = krb5.init_context()
        groups = {self.service_keytab: {self.principal(s) for s in SERVICES}}
        groups.update({self.keytab(user): {self.principal(user)} for user in self.users})
        for path in groups:
            path.unlink(missing_ok=True)
        targets = {path: krb5.kt_resolve(ctx, f"FILE:{path}".encode()) for path in groups}
        for entry in krb5.kt_resolve(ctx, f"FILE:{everyone}".encode()):
            name = entry.principal.name.decode()
            for path, names in groups.items():
                if name in names:
                    krb5.kt_add_entry(ctx, targets[path], entry.principal, entry.kvno, entry.timestamp, entry.key)
        for path in groups:
            if not path.exists():
                raise KdcError(f"MiniKdc's keytab {everyone} holds no key for {sorted(groups[path])}")
            path.chmod(0o600)
