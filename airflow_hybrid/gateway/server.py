"""Running the gateway on uvicorn: in the foreground (``airflow hybrid gateway``) or in a background thread
on a socket bound beforehand (tests, benchmarks, embedding)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping

import uvicorn

from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.gateway.app import create_app
from airflow_hybrid.gateway.config import GatewayConfig
from airflow_hybrid.mount.union import HybridMount


def uvicorn_config(config: GatewayConfig, mounts: Mapping[str, HybridMount] | None = None,
                   log_level: str = "info", graceful_shutdown: float = 30.0) -> uvicorn.Config:
    """uvicorn's settings for the gateway; ``graceful_shutdown``: seconds a stop waits for requests in flight
    and for connections to close (a TLS client that never answers the close would hold it 30 s more)."""
    return uvicorn.Config(
        create_app(config, mounts), host=config.host, port=config.port, lifespan="on", log_level=log_level,
        ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile, access_log=False,
        timeout_keep_alive=30, timeout_graceful_shutdown=graceful_shutdown,
    )


def serve(config: GatewayConfig) -> None:
    """Serve until interrupted (SIGINT/SIGTERM: uvicorn finishes the requests in flight)."""
    uvicorn.Server(uvicorn_config(config)).run()


class BackgroundGateway:
    """The gateway in a thread of this process, on ``config.host`` and a free port (``config.port`` 0) or the
    one given; ``endpoint`` is its URL once started. A context manager."""

    def __init__(self, config: GatewayConfig, mounts: Mapping[str, HybridMount] | None = None,
                 graceful_shutdown: float = 2.0) -> None:
        self.config = config
        self._sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((config.host, config.port))
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(config, mounts, log_level="warning",
                                                    graceful_shutdown=graceful_shutdown))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name=f"hybrid-gateway-{self.port}", daemon=True)

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def app(self):
        return self.server.config.app

    def start(self) -> BackgroundGateway:
        self._thread.start()
        while not self.server.started:  # set once the lifespan opened the mounts and the socket listens
            if not self._thread.is_alive():
                raise HybridError(f"the gateway on {self.endpoint} failed to start (see its log)")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> BackgroundGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
