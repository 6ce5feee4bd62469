"""Free loopback ports for the servers the devstack starts (Hadoop's JVMs, SeaweedFS)."""

from __future__ import annotations

import socket


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
