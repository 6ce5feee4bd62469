"""The devstack's servers: free ports for them, and for those run as child processes (Hadoop's JVMs, the
MiniKdc, SeaweedFS, the devstack itself) starting one, waiting until it is ready and stopping it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

_PR_SET_PDEATHSIG = 1
_S = TypeVar("_S", bound="Service")


class Service:
    """A server with ``start()`` (returning it, started) and ``stop()``; ``with`` starts and stops it."""

    def start(self: _S, *args: Any, **kwargs: Any) -> _S:
        raise NotImplementedError

    def stop(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_ports(count: int, host: str) -> list[int]:
    """``count`` distinct loopback ports free right now (bound together, then released for the server)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def die_with_parent() -> None:
    """In the child before ``exec``: on Linux, get SIGTERM when the process that started it dies (a killed
    test run), rather than keep serving as an orphan. Linux sends it when the *thread* that started the child
    ends: start servers from a thread that lives as long as they should."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    command: Sequence[str],
    log_path: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    append: bool = False,
    with_parent: bool = True,
    cwd: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start a server: no stdin, its output (both streams) to ``log_path`` (appended to with ``append``), in a
    session of its own (in ``cwd`` if given), and, unless ``with_parent`` is false, stopped when this process
    dies."""
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(  # noqa: S603 - the devstack's own fixed commands
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent if with_parent else None,  # noqa: PLW1509 - only prctl, no locks
        )


def wait_ready(
    ready: Callable[[], bool],
    processes: Mapping[str, subprocess.Popen],
    timeout: float,
    *,
    exited: Callable[[str, int], Exception],
    timed_out: Callable[[], Exception],
    interval: float = 0.1,
) -> None:
    """Call ``ready()`` every ``interval`` seconds until it is true.

    :raises: ``exited(name, returncode)`` as soon as one of ``processes`` has exited, ``timed_out()`` when
        ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                raise exited(name, process.returncode)
        if ready():
            return
        if time.monotonic() > deadline:
            raise timed_out()
        time.sleep(interval)


def stop(processes: Iterable[subprocess.Popen], timeout: float) -> None:
    """SIGTERM every process still running, then SIGKILL those not gone within ``timeout`` seconds (in all), and
    then whatever is left in their sessions (each was started in a session of its own by :func:`spawn`)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for process in processes:  # what a server left behind in its session (workers, task processes)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

