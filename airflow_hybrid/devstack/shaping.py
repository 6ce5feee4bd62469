"""Link shaping between "on-prem" and "cloud": latency, a bandwidth cap and injected faults.

Each devstack server sits behind a :class:`ShapingMiddleware` driven by the :class:`LinkShaper` of its
link (``webhdfs`` for the namenode and data node, ``s3`` for the object store). A shaper is adjusted at
runtime, in process (:meth:`LinkShaper.configure`, :meth:`LinkShaper.fail_next`) or over HTTP through
:class:`ControlApp` (``POST /_devstack/shaping``), so tests can shape a devstack in another process.

Faults:

``reset``       the connection is reset (TCP RST) instead of answered;
``reset_body``  the response starts, then the connection is reset after ``after_bytes`` body bytes;
``500``/``503`` an HTTP error with the body the service would send (WebHDFS ``RemoteException`` JSON,
                S3 ``<Error>`` XML: ``InternalError`` / ``SlowDown``).

Random faults hit a ``fault_rate`` share of requests (seeded RNG: set ``seed`` for a repeatable
sequence); :meth:`LinkShaper.fail_next` scripts the next N requests matching an operation glob.
Every request, delay, throttled byte and fault is counted in :meth:`LinkShaper.stats`.
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_hybrid.devstack.wsgi import AbortConnection

FAULT_KINDS = ("reset", "reset_body", "500", "503")
#: Bytes sent per throttling step, so a capped transfer flows smoothly rather than in bursts.
THROTTLE_STEP = 64 * 1024
_UNSET: Any = object()


@dataclass
class _ScriptedFault:
    kind: str
    op: str
    remaining: int
    after_bytes: int


@dataclass(frozen=True)
class Fault:
    """A fault chosen for one request."""

    kind: str
    after_bytes: int = 0


def _check_kind(kind: str) -> str:
    kind = str(kind)
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return kind


class RequestStats:
    """Thread-safe request counters per operation (``stats["OPEN"]``)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def incr(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"RequestStats({self.snapshot()})"


class LinkShaper:
    """Latency, bandwidth cap and faults of one link; thread-safe and adjustable at runtime.

    :param latency_ms: added before every request is handled.
    :param bandwidth: cap in bytes per second on request and response bodies (shared by all
        connections of the link), ``None`` for no cap.
    :param fault_rate: share of requests (0..1) that get a random fault from ``fault_kinds``.
    :param fault_ops: glob of the operations random faults may hit (``"*"``, ``"datanode.*"``, ``"GetObject"``).
    :param seed: seed of the fault RNG, for a repeatable sequence.
    """

    def __init__(
        self,
        name: str,
        *,
        latency_ms: float = 0.0,
        bandwidth: float | None = None,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = ("reset", "503"),
        fault_ops: str = "*",
        reset_after_bytes: int = 65536,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._scripted: deque[_ScriptedFault] = deque()
        self._stats: Counter[str] = Counter()
        self._link_free_at = 0.0
        self._rng = random.Random(seed)
        self.latency_ms = 0.0
        self.bandwidth: float | None = None
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = ()
        self.fault_ops = "*"
        self.reset_after_bytes = 0
        self.seed = seed
        self.configure(
            latency_ms=latency_ms,
            bandwidth=bandwidth,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            fault_ops=fault_ops,
            reset_after_bytes=reset_after_bytes,
        )

    # -- control ------------------------------------------------------------------------------------
    def configure(
        self,
        *,
        latency_ms: float = _UNSET,
        bandwidth: float | None = _UNSET,
        fault_rate: float = _UNSET,
        fault_kinds: Iterable[str] = _UNSET,
        fault_ops: str = _UNSET,
        reset_after_bytes: int = _UNSET,
        seed: int | None = _UNSET,
    ) -> None:
        """Change some settings; the others keep their values."""
        with self._lock:
            if latency_ms is not _UNSET:
                if float(latency_ms) < 0:
                    raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
                self.latency_ms = float(latency_ms)
            if bandwidth is not _UNSET:
                if bandwidth is not None and float(bandwidth) <= 0:
                    raise ValueError(f"bandwidth must be > 0 bytes/s or None, got {bandwidth}")
                self.bandwidth = None if bandwidth is None else float(bandwidth)
            if fault_rate is not _UNSET:
                if not 0.0 <= float(fault_rate) <= 1.0:
                    raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
                self.fault_rate = float(fault_rate)
            if fault_kinds is not _UNSET:
                kinds = (fault_kinds,) if isinstance(fault_kinds, str) else tuple(fault_kinds)
                if not kinds:
                    raise ValueError("fault_kinds must name at least one kind")
                self.fault_kinds = tuple(_check_kind(kind) for kind in kinds)
            if fault_ops is not _UNSET:
                self.fault_ops = str(fault_ops)
            if reset_after_bytes is not _UNSET:
                self.reset_after_bytes = max(0, int(reset_after_bytes))
            if seed is not _UNSET:
                self.seed = seed
                self._rng = random.Random(seed)

    def fail_next(
        self, count: int = 1, *, op: str = "*", kind: str = "reset", after_bytes: int | None = None
    ) -> None:
        """Make the next ``count`` requests whose operation matches the glob ``op`` fail with ``kind``."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        fault = _ScriptedFault(
            _check_kind(kind),
            op or "*",
            int(count),
            self.reset_after_bytes if after_bytes is None else int(after_bytes),
        )
        with self._lock:
            self._scripted.append(fault)

    def clear(self) -> None:
        """Back to a perfect link: no latency, no cap, no faults (statistics are kept)."""
        with self._lock:
            self._scripted.clear()
        self.configure(latency_ms=0.0, bandwidth=None, fault_rate=0.0, fault_ops="*")

    def settings(self) -> dict:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "bandwidth": self.bandwidth,
                "fault_rate": self.fault_rate,
                "fault_kinds": list(self.fault_kinds),
                "fault_ops": self.fault_ops,
                "reset_after_bytes": self.reset_after_bytes,
                "seed": self.seed,
                "scripted_faults": [
                    {"kind": f.kind, "op": f.op, "remaining": f.remaining, "after_bytes": f.after_bytes}
                    for f in self._scripted
                ],
            }

    def stats(self) -> dict[str, float]:
        """Counters: ``requests``, ``delayed``, ``throttled_bytes``, ``faults``, ``faults.<kind>``, ``faults.<op>``."""
        with self._lock:
            return dict(self._stats)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()

    # -- used by the middleware ---------------------------------------------------------------------
    def before_request(self, op: str) -> Fault | None:
        """Count the request, apply the latency and choose its fault (scripted first, then random)."""
        fault = None
        with self._lock:
            self._stats["requests"] += 1
            for scripted in self._scripted:
                if fnmatch.fnmatchcase(op, scripted.op):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        self._scripted.remove(scripted)
                    fault = Fault(scripted.kind, scripted.after_bytes)
                    break
            random_fault = fault is None and self.fault_rate and fnmatch.fnmatchcase(op, self.fault_ops)
            if random_fault and self._rng.random() < self.fault_rate:
                fault = Fault(self._rng.choice(self.fault_kinds), self.reset_after_bytes)
            if fault is not None:
                self._stats["faults"] += 1
                self._stats[f"faults.{fault.kind}"] += 1
                self._stats[f"faults.{op}"] += 1
            latency = self.latency_ms / 1000.0
            if latency:
                self._stats["delayed"] += 1
        if latency:
            time.sleep(latency)
        return fault

    def throttle(self, nbytes: int) -> None:
        """Wait until ``nbytes`` fit in the bandwidth cap (shared by every connection of the link)."""
        rate = self.bandwidth
        if not rate or nbytes <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._link_free_at, now - 0.05)  # up to 50 ms of unused capacity carries over
            self._link_free_at = start + nbytes / rate
            wait = self._link_free_at - now
            self._stats["throttled_bytes"] += nbytes
        if wait > 0:
            time.sleep(wait)


class _ThrottledInput:
    """Request body read at the link's bandwidth."""

    def __init__(self, raw: Any, shaper: LinkShaper) -> None:
        self._raw = raw
        self._shaper = shaper

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(THROTTLE_STEP), b""))
        data = self._raw.read(min(size, THROTTLE_STEP))
        self._shaper.throttle(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._raw.readline(size)
        self._shaper.throttle(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self, limit: int) -> bool:
        return self._raw.drain(limit)


class _ShapedBody:
    """Response body sent at the link's bandwidth, optionally reset after ``abort_after`` bytes."""

    def __init__(
        self, body: Iterable[bytes], shaper: LinkShaper, throttle: bool, abort_after: int | None
    ) -> None:
        self._body = body
        self._shaper = shaper
        self._throttle = throttle
        self._abort_after = abort_after

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._body:
            for start in range(0, max(len(chunk), 1), THROTTLE_STEP):
                piece = chunk[start : start + THROTTLE_STEP]
                if self._abort_after is not None and sent + len(piece) >= self._abort_after:
                    yield piece[: self._abort_after - sent]  # also makes sure the headers went out
                    raise AbortConnection(f"injected reset after {self._abort_after} body bytes")
                if self._throttle:
                    self._shaper.throttle(len(piece))
                sent += len(piece)
                yield piece
        if self._abort_after is not None:
            raise AbortConnection("injected reset at the end of the body")

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class ShapingMiddleware:
    """WSGI middleware applying a :class:`LinkShaper` and counting requests per operation.

    Paths under ``/_devstack/`` go to ``control_app`` unshaped and uncounted.
    """

    def __init__(
        self,
        app: Callable,
        shaper: LinkShaper,
        *,
        classify: Callable[[dict], str],
        error_body: Callable[[int, str], tuple[str, bytes]],
        stats: RequestStats,
        control_app: Callable | None = None,
    ) -> None:
        self.app = app
        self.shaper = shaper
        self.classify = classify
        self.error_body = error_body
        self.stats = stats
        self.control_app = control_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_devstack/"):
            if self.control_app is None:
                return _json_response(start_response, 404, {"error": "no control endpoint"})
            return self.control_app(environ, start_response)
        op = self.classify(environ)
        self.stats.incr(op)
        fault = self.shaper.before_request(op)
        if fault is not None and fault.kind == "reset":
            raise AbortConnection(f"injected reset of {self.shaper.name} {op}")
        if fault is not None and fault.kind in ("500", "503"):
            status = int(fault.kind)
            content_type, body = self.error_body(
                status, f"Injected fault on the {self.shaper.name} link ({op})"
            )
            reason = "Internal Server Error" if status == 500 else "Service Unavailable"
            start_response(
                f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            )
            return [body]
        throttle = bool(self.shaper.bandwidth)
        if throttle:
            environ["wsgi.input"] = _ThrottledInput(environ["wsgi.input"], self.shaper)
        result = self.app(environ, start_response)
        abort_after = fault.after_bytes if fault is not None and fault.kind == "reset_body" else None
        if throttle or abort_after is not None:
            return _ShapedBody(result, self.shaper, throttle, abort_after)
        return result


def _json_response(start_response: Callable, status: int, payload: Any) -> list[bytes]:
    body = json.dumps(payload, indent=None, default=str).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    start_response(
        f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class Shaping:
    """Control of every link of a devstack; ``target`` is a link name (``webhdfs``, ``s3``) or ``"all"``."""

    def __init__(self, links: dict[str, LinkShaper]) -> None:
        self.links = links

    def __getitem__(self, name: str) -> LinkShaper:
        return self.links[name]

    def _targets(self, target: str) -> list[LinkShaper]:
        if target == "all":
            return list(self.links.values())
        if target not in self.links:
            raise ValueError(f"unknown link {target!r}; expected one of {', '.join(['all', *self.links])}")
        return [self.links[target]]

    def configure(self, target: str = "all", **settings: Any) -> dict:
        """Set ``latency_ms``, ``bandwidth``, ``fault_rate``, ``fault_kinds``, ``fault_ops``, ``seed``..."""
        for link in self._targets(target):
            link.configure(**settings)
        return self.snapshot()

    def fail_next(
        self,
        count: int = 1,
        *,
        op: str = "*",
        kind: str = "reset",
        target: str = "all",
        after_bytes: int | None = None,
    ) -> dict:
        for link in self._targets(target):
            link.fail_next(count, op=op, kind=kind, after_bytes=after_bytes)
        return self.snapshot()

    def clear(self, target: str = "all") -> dict:
        for link in self._targets(target):
            link.clear()
        return self.snapshot()

    def reset_stats(self, target: str = "all") -> None:
        for link in self._targets(target):
            link.reset_stats()

    def stats(self, target: str) -> dict:
        return self.links[target].stats()

    def snapshot(self) -> dict:
        return {
            name: {"settings": link.settings(), "stats": link.stats()} for name, link in self.links.items()
        }


class ControlApp:
    """The ``/_devstack/`` HTTP API, served by every devstack server.

    ``GET health``, ``GET stats``, ``POST stats/reset``, ``GET shaping``, ``POST shaping`` (JSON:
    ``target`` and settings), ``POST shaping/fail_next`` (``count``, ``op``, ``kind``, ``target``,
    ``after_bytes``), ``POST shaping/clear``, plus ``actions``: ``POST <name>`` with a JSON body
    (e.g. ``config``, ``buckets``).
    """

    def __init__(
        self,
        shaping: Shaping,
        stats: Callable[[], dict],
        reset_stats: Callable[[], None] | None = None,
        actions: dict[str, Callable[[dict], Any]] | None = None,
        health: Callable[[], dict] | None = None,
    ) -> None:
        self.shaping = shaping
        self.stats = stats
        self.reset_stats = reset_stats
        self.actions = actions or {}
        self.health = health

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        route = environ.get("PATH_INFO", "")[len("/_devstack/") :].strip("/")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            body: dict = {}
            if method in ("POST", "PUT"):
                raw = environ["wsgi.input"].read()
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ValueError("the request body must be a JSON object")
            return _json_response(start_response, 200, self._dispatch(method, route, body))
        except KeyError as error:
            return _json_response(start_response, 404, {"error": f"no such control endpoint: {error}"})
        except (ValueError, TypeError) as error:
            return _json_response(start_response, 400, {"error": str(error)})

    def _dispatch(self, method: str, route: str, body: dict) -> Any:
        if route == "health":
            return {"ok": True, **(self.health() if self.health is not None else {})}
        if route == "stats" and method == "GET":
            return self.stats()
        if route == "stats/reset" and method == "POST":
            if self.reset_stats is not None:
                self.reset_stats()
            return self.stats()
        if route == "shaping" and method == "GET":
            return self.shaping.snapshot()
        if route == "shaping" and method == "POST":
            target = body.pop("target", "all")
            return self.shaping.configure(target, **body)
        if route == "shaping/fail_next" and method == "POST":
            return self.shaping.fail_next(**body)
        if route == "shaping/clear" and method == "POST":
            return self.shaping.clear(body.get("target", "all"))
        name, _, rest = route.partition("/")
        if name in self.actions and method in ("POST", "PUT"):
            if rest:
                body.setdefault("name", rest)
            return self.actions[name](body)
        raise KeyError(f"{method} /_devstack/{route}")
