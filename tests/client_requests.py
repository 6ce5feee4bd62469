"""Client-side hooks on this process's HTTP layer, whatever server answers (the devstack's or Apache Hadoop's).

Every WebHDFS request of the store goes through :meth:`requests.Session.send` (redirects to a data node too),
every S3 request through botocore's :meth:`~botocore.httpsession.URLLib3Session.send`; both are wrapped here:

``RequestLog``           counts the requests this process sends: ``webhdfs.<OP>`` to the namenode,
                         ``webhdfs.datanode.<OP>`` to a data node, ``s3.<METHOD>``.
``hdfs_requests``        the WebHDFS requests that reached ``hdfs_server``: as the devstack server counted them,
                         or, on Apache Hadoop (whose counters are not ours to read), as this process sent them.
``kill_at_mutation``     SIGKILLs this process just before or just after its n-th *mutating* request (WebHDFS
                         or S3 PUT/POST/DELETE): the crash-safety test's kill points, on any server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import botocore.httpsession
import requests

MUTATING = frozenset({"PUT", "POST", "DELETE"})
WHEN = ("before", "after")


@dataclass(frozen=True)
class Sent:
    """One request as the client sends it."""

    service: str  # "webhdfs" or "s3"
    method: str
    url: str

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING

    def name(self, namenode_port: int | None = None) -> str:
        """``webhdfs.<OP>`` / ``webhdfs.datanode.<OP>`` (a port other than ``namenode_port``), ``s3.<METHOD>``."""
        if self.service != "webhdfs":
            return f"{self.service}.{self.method}"
        parts = urlsplit(self.url)
        op = parse_qs(parts.query).get("op", ["?"])[0].upper()
        datanode = namenode_port is not None and parts.port != namenode_port
        return f"webhdfs.{'datanode.' if datanode else ''}{op}"


Observer = Callable[[Sent, str], None]
_observers: list[Observer] = []
_installed: dict[str, Callable] = {}
_lock = threading.Lock()
_kill_hooks: list[contextlib.AbstractContextManager] = []


def _notify(sent: Sent, when: str) -> None:
    for observer in list(_observers):
        observer(sent, when)


def _wrap(cls: type, service: str, webhdfs_only: bool) -> None:
    original = cls.send
    _installed[service] = original

    def send(self, request, *args, **kwargs):
        if webhdfs_only and "/webhdfs/v1" not in request.url:
            return original(self, request, *args, **kwargs)
        sent = Sent(service, request.method.upper(), request.url)
        _notify(sent, "before")
        response = original(self, request, *args, **kwargs)
        _notify(sent, "after")
        return response

    cls.send = send


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Call ``observer(sent, "before" | "after")`` around every WebHDFS and S3 request while inside."""
    with _lock:
        if not _installed:
            _wrap(requests.Session, "webhdfs", webhdfs_only=True)
            _wrap(botocore.httpsession.URLLib3Session, "s3", webhdfs_only=False)
        _observers.append(observer)
    try:
        yield
    finally:
        with _lock:
            _observers.remove(observer)
            if not _observers:
                requests.Session.send = _installed.pop("webhdfs")
                botocore.httpsession.URLLib3Session.send = _installed.pop("s3")


class RequestLog:
    """Counts the requests sent while active (``with RequestLog(port) as log: ...; log.counts()``)."""

    def __init__(self, namenode_port: int | None = None) -> None:
        self.namenode_port = namenode_port
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._context: contextlib.AbstractContextManager | None = None

    def _observe(self, sent: Sent, when: str) -> None:
        if when == "before":
            with self._lock:
                self._counts[sent.name(self.namenode_port)] += 1

    def counts(self, service: str | None = None) -> dict[str, int]:
        """Requests per name so far (only ``service``'s when given)."""
        with self._lock:
            return {k: n for k, n in self._counts.items() if service is None or k.startswith(f"{service}.")}

    def __enter__(self) -> RequestLog:
        self._context = observing(self._observe)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._context is not None
        self._context.__exit__(*exc)


@contextlib.contextmanager
def hdfs_requests(hdfs_server) -> Iterator[Callable[[], dict[str, int]]]:
    """A function giving the WebHDFS requests per operation that reached ``hdfs_server`` so far, named as the
    devstack server counts them (``OPEN``, ``datanode.OPEN``, ``GETFILESTATUS``...)."""
    if hdfs_server.kind == "devstack":  # the server's own counters
        yield lambda: dict(hdfs_server.stats()["webhdfs"])
        return
    # Apache Hadoop: what this process sent it (every request of the tests' stores is sent from here)
    with RequestLog(hdfs_server.webhdfs_port) as log:
        yield lambda: {name.removeprefix("webhdfs."): n for name, n in log.counts("webhdfs").items()}


def kill_at_mutation(count: int, when: str) -> None:
    """SIGKILL this process ``when`` ("before" or "after") its ``count``-th mutating request is sent; for good
    (meant for a child process that is to be killed). ``count <= 0`` installs nothing."""
    if when not in WHEN:
        raise ValueError(f"when must be one of {WHEN}, got {when!r}")
    if count <= 0:
        return
    seen = {"before": 0, "after": 0}
    lock = threading.Lock()

    def observe(sent: Sent, moment: str) -> None:
        if not sent.mutating:
            return
        with lock:
            seen[moment] += 1
            if moment == when and seen[moment] == count:
                os.kill(os.getpid(), signal.SIGKILL)

    hook = observing(observe)
    hook.__enter__()
    _kill_hooks.append(hook)  # kept: a collected context manager would close (and uninstall) the hook
