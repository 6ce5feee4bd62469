"""Ports and lifetimes of the servers the devstack starts as child processes (Hadoop's JVMs, SeaweedFS)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys

_PR_SET_PDEATHSIG = 1


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
