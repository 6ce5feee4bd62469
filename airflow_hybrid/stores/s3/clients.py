"""boto3 S3 clients shared within a process, one per connection and client settings.

Building a client costs more than a warm query's requests (the amazon hook's session, botocore's service model
read and parsed: ~0.1 s of CPU), and every ``HybridFileSystem``, mount or task in a process would pay it again
for the same connection. A client is thread-safe and keeps its own credential refresh, so stores of the same
Airflow connection (its type, host, login, password and extra, so an edited connection gets a new client) and
the same client settings share one. Keyed by process too: a forked child never reuses its parent's sockets.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

#: Clients kept (least recently used dropped; a dropped client still serves the stores holding it).
MAX_SHARED_CLIENTS = 32

_clients: OrderedDict[Hashable, Any] = OrderedDict()
_lock = threading.Lock()


def shared_client(key: Hashable, make: Callable[[], Any]) -> Any:
    """The client for ``key`` in this process, made by ``make()`` the first time."""
    key = (os.getpid(), key)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    client = make()  # outside the lock: a slow build does not hold up other connections' stores
    with _lock:
        held = _clients.setdefault(key, client)
        _clients.move_to_end(key)
        while len(_clients) > MAX_SHARED_CLIENTS:
            _clients.popitem(last=False)
    return held


def forget_clients() -> None:
    """Drop every shared client (tests that restart a server on the same address)."""
    with _lock:
        _clients.clear()
