"""Connection resets injected on the client side, whatever server answers (moto, SeaweedFS, our WebHDFS, Hadoop).

``S3Faults``       on one boto3 client (botocore's ``before-send`` event): the next request(s) of an operation
                   are either ``reset`` before they reach the server, or ``lost``: sent, applied by the server,
                   and their answer dropped as a reset connection would (botocore then retries, as it does in
                   production, e.g. a second ``CreateMultipartUpload`` whose first upload id is never seen).
``WebHdfsFaults``  on this process's WebHDFS requests (``requests.Session.send``): the next data-node ``OPEN``
                   (or any ``op``) is reset before it is answered, or its body is cut after some bytes.

Each records what it injected (``injected``: a Counter of ``<operation>.<kind>``).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
from botocore.exceptions import ConnectionClosedError
from urllib3.exceptions import ProtocolError

S3_KINDS = ("reset", "lost")
WEBHDFS_KINDS = ("reset", "body")


@dataclass
class _Armed:
    operation: str
    kind: str
    count: int
    skip: int


class _Faults:
    """Armed faults, taken one by one by the requests they match; ``injected`` counts what was injected."""

    kinds: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.injected: Counter[str] = Counter()
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()

    def _arm(self, operation: str, kind: str, count: int, skip: int) -> None:
        if kind not in self.kinds:
            raise ValueError(f"kind must be one of {self.kinds}, got {kind!r}")
        with self._lock:
            self._armed.append(_Armed(operation, kind, count, skip))

    def pending(self) -> int:
        with self._lock:
            return sum(armed.count for armed in self._armed)

    def _take(self, name: str) -> str | None:
        with self._lock:
            for armed in self._armed:
                if armed.operation != name:
                    continue
                if armed.skip:
                    armed.skip -= 1
                    return None
                armed.count -= 1
                if armed.count <= 0:
                    self._armed.remove(armed)
                self.injected[f"{name}.{armed.kind}"] += 1
                return armed.kind
        return None


class S3Faults(_Faults):
    """Resets injected into ``client``'s requests (``faults.arm("CreateMultipartUpload", "lost")``)."""

    kinds = S3_KINDS

    def __init__(self, client) -> None:
        super().__init__()
        self.client = client
        client.meta.events.register("before-send.s3", self._before_send)

    def arm(self, operation: str, kind: str = "lost", count: int = 1, skip: int = 0) -> None:
        """Fault the ``count`` requests of ``operation`` that follow the next ``skip`` ones."""
        self._arm(operation, kind, count, skip)

    def _before_send(self, request, event_name: str, **_) -> None:
        kind = self._take(event_name.rsplit(".", 1)[-1])
        if kind is None:
            return None
        if kind == "lost":  # the server gets the request and applies it; its answer never arrives
            response = self.client._endpoint.http_session.send(request)
            assert response.content is not None  # read to the end: the connection goes back to the pool
            request.reset_stream()
        raise ConnectionClosedError(endpoint_url=request.url)


class WebHdfsFaults(_Faults):
    """Resets of this process's WebHDFS requests; ``namenode_port`` tells a data-node request from the name node's."""

    kinds = WEBHDFS_KINDS

    def __init__(self, namenode_port: int) -> None:
        super().__init__()
        self.namenode_port = namenode_port

    def arm(self, op: str = "datanode.OPEN", kind: str = "body", count: int = 1, skip: int = 0) -> None:
        self._arm(op, kind, count, skip)

    def _name(self, url: str) -> str:
        parts = urlsplit(url)
        op = parse_qs(parts.query).get("op", ["?"])[0].upper()
        return f"datanode.{op}" if parts.port != self.namenode_port else op


    @contextlib.contextmanager
    def installed(self) -> Iterator[WebHdfsFaults]:
        original = requests.Session.send
        faults = self

        def send(session, request, *args, **kwargs):
            if "/webhdfs/v1" not in request.url:
                return original(session, request, *args, **kwargs)
            kind = faults._take(faults._name(request.url))
            if kind == "reset":
                raise requests.ConnectionError(f"injected reset of {request.url}")
            response = original(session, request, *args, **kwargs)
            if kind == "body":
                _cut_body(response, after=1024)
            return response

        requests.Session.send = send
        try:
            yield self
        finally:
            requests.Session.send = original


def _cut_body(response: requests.Response, after: int) -> None:
    """Make the streamed body of ``response`` fail, as a reset connection does, after ``after`` bytes."""
    raw = response.raw
    read = raw.read
    state = {"sent": 0}

    def cut(amt=None, *args, **kwargs):
        if state["sent"] >= after:
            raise ProtocolError("Connection broken: injected reset", ConnectionResetError(104, "reset"))
        want = after - state["sent"] if amt is None else min(amt, after - state["sent"])
        data = read(want, *args, **kwargs)
        state["sent"] += len(data)
        return data

    raw.read = cut
