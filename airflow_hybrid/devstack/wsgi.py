"""A small threaded WSGI server with real HTTP/1.1 keep-alive, for the devstack's loopback servers.

Werkzeug's development server closes every connection after one response, which makes every WebHDFS
call pay a TCP handshake (and a 10 ms drain wait). This server keeps connections open, reads request
bodies sent with ``Content-Length`` or ``Transfer-Encoding: chunked`` (what ``requests`` sends for a
generator), streams responses (``Content-Length`` when known, chunked otherwise), and sends files with
``sendfile(2)`` when the application returns a :class:`FileWrapper`.

An application closes the connection after its answer with a ``Connection: close`` header (as Hadoop's
data nodes do). It may raise :class:`AbortConnection` to have the connection torn down with a TCP RST
(``SO_LINGER`` 0), which is how the link shaper injects connection resets.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

#: Unread request bodies up to this size are drained so the connection can be reused; larger ones close it.
DRAIN_LIMIT = 1024 * 1024
_LINGER_ABORT = struct.pack("ii", 1, 0)


class AbortConnection(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised by an application to reset the client connection (TCP RST) instead of answering."""


class FileWrapper:
    """``wsgi.file_wrapper``: ``count`` bytes of an open file from ``offset``, sent with ``sendfile``."""

    def __init__(
        self, filelike: BinaryIO, blksize: int = 1024 * 1024, offset: int = 0, count: int | None = None
    ):
        self.filelike = filelike
        self.blksize = blksize
        self.offset = offset
        self.count = count

    def __iter__(self) -> Iterator[bytes]:
        self.filelike.seek(self.offset)
        left = self.count
        while left is None or left > 0:
            data = self.filelike.read(self.blksize if left is None else min(self.blksize, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data

    def close(self) -> None:
        self.filelike.close()


class _LimitedInput:
    """Request body of a known length; reads stop at the end of the body."""

    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self._rfile = rfile
        self.remaining = length

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._rfile.read(size)
        if len(data) < size:
            self.remaining = 0
            raise ConnectionResetError("client closed the connection before sending the whole body")
        self.remaining -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._rfile.readline(size)
        self.remaining -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self, limit: int) -> bool:
        """Discard the unread body; ``False`` when more than ``limit`` bytes were left (not drained)."""
        if self.remaining > limit:
            return False
        while self.read(65536):
            pass
        return True


class _ChunkedInput:
    """Request body sent with ``Transfer-Encoding: chunked``, decoded."""

    def __init__(self, rfile: BinaryIO) -> None:
        self._rfile = rfile
        self._chunk_left = 0
        self._done = False
        self._consumed = 0

    def _next_chunk(self) -> None:
        line = self._rfile.readline(65537)
        if not line:
            raise ConnectionResetError("client closed the connection inside a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ValueError(f"invalid chunk size line {line[:40]!r}") from None
        if size == 0:
            while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._done = True
        self._chunk_left = size

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1024 * 1024), b""))
        parts: list[bytes] = []
        while size > 0 and not self._done:
            if self._chunk_left == 0:
                self._next_chunk()
                continue
            data = self._rfile.read(min(size, self._chunk_left))
            if not data:
                raise ConnectionResetError("client closed the connection inside a chunked body")
            self._chunk_left -= len(data)
            self._consumed += len(data)
            size -= len(data)
            parts.append(data)
            if self._chunk_left == 0:
                self._rfile.readline(3)  # CRLF closing the chunk
            if parts:
                break  # return what one chunk gave, like a socket read
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while not out.endswith(b"\n") and (size is None or size < 0 or len(out) < size):
            byte = self.read(1)
            if not byte:
                break
            out += byte
        return bytes(out)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self, limit: int) -> bool:
        while not self._done:
            if self._consumed > limit:
                return False
            self.read(65536)
        return True


class _EmptyInput:
    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def drain(self, limit: int) -> bool:
        return True


class WSGIRequestHandler(BaseHTTPRequestHandler):
    """Serves one keep-alive connection: request after request until the client or an error closes it."""

    protocol_version = "HTTP/1.1"
    server: WSGIServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.parse_request():
                return
            self._run_wsgi()
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.address_string(), format % args)

    def _environ(self, body: Any) -> dict:
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.server.scheme,
            "wsgi.input": body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "devstack.socket": self.connection,
        }
        for name, value in self.headers.items():
            if "_" in name:
                continue  # as werkzeug: WSGI cannot tell X_Foo from X-Foo
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        if self.server.environ_hook is not None:
            self.server.environ_hook(environ, self.headers)
        return environ

    def _body(self) -> _LimitedInput | _ChunkedInput | _EmptyInput:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _ChunkedInput(self.rfile)
        length = self.headers.get("Content-Length")
        if length:
            return _LimitedInput(self.rfile, int(length))
        return _EmptyInput()

    def _run_wsgi(self) -> None:
        body = self._body()
        environ = self._environ(body)
        state: dict[str, Any] = {"status": None, "headers": None, "sent": False, "chunked": False}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            if exc_info and state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, headers
            return write

        def send_headers(first: bytes = b"", content_length: int | None = None) -> None:
            code, _, reason = state["status"].partition(" ")
            names = {name.lower() for name, _ in state["headers"]}
            lines = [f"{self.protocol_version} {code} {reason}\r\n"]
            for name, value in state["headers"]:
                if name.lower() == "connection":
                    if value.lower() == "close":
                        self.close_connection = True  # sent once, below
                    continue
                lines.append(f"{name}: {value}\r\n")
            no_body = self.command == "HEAD" or code.startswith("1") or code in ("204", "304")
            if "content-length" not in names and not no_body:
                if content_length is not None:
                    lines.append(f"Content-Length: {content_length}\r\n")
                elif self.request_version >= "HTTP/1.1":
                    state["chunked"] = True
                    lines.append("Transfer-Encoding: chunked\r\n")
                else:
                    self.close_connection = True
            if self.close_connection:
                lines.append("Connection: close\r\n")
            lines.append("\r\n")
            head = "".join(lines).encode("latin-1")
            state["sent"] = True
            if first and state["chunked"]:
                first = b"%x\r\n%s\r\n" % (len(first), first)
            self.wfile.write(head + first if len(first) < 65536 else head)
            if len(first) >= 65536:
                self.wfile.write(first)

        def write(data: bytes) -> None:
            if not state["sent"]:
                send_headers(data)
                return
            if not data:
                return
            if state["chunked"]:
                self.wfile.write(b"%x\r\n" % len(data))
                self.wfile.write(data)
                self.wfile.write(b"\r\n")
            else:
                self.wfile.write(data)

        result: Any = ()
        try:
            result = self.server.app(environ, start_response)
            if isinstance(result, (list, tuple)) and not state["sent"]:
                payload = b"".join(result)
                send_headers(payload, content_length=len(payload))
            elif isinstance(result, FileWrapper) and result.count is not None and not state["sent"]:
                send_headers(content_length=result.count)
                if result.count and self.command != "HEAD":
                    self.connection.sendfile(result.filelike, result.offset, result.count)
            else:
                for chunk in result:
                    write(chunk)
                if not state["sent"]:
                    send_headers(content_length=0)
                if state["chunked"]:
                    self.wfile.write(b"0\r\n\r\n")
        except AbortConnection:
            self._abort()
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            log.exception("error while serving %s %s", self.command, self.path)
            if not state["sent"]:
                with contextlib.suppress(Exception):
                    self.send_error(500)
            self.close_connection = True
            return
        finally:
            if hasattr(result, "close"):
                result.close()
        try:
            if not body.drain(DRAIN_LIMIT):
                self.close_connection = True
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True

    def _abort(self) -> None:
        """Reset the connection: with ``SO_LINGER`` 0, closing the socket sends an RST, not a FIN."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        self.server.mark_aborted(self.connection)
        self.close_connection = True


class WSGIServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server for one WSGI application on ``host:port`` (port 0 picks a free one)."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        idle_timeout: float = 120.0,
        environ_hook: Callable[[dict, Any], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.environ_hook = environ_hook
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._aborted: set[int] = set()
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), WSGIRequestHandler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def host(self) -> str:
        return self.server_address[0]

    # -- connection bookkeeping ---------------------------------------------------------------------
    def track(self, sock: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(sock)

    def mark_aborted(self, sock: socket.socket) -> None:
        with self._conn_lock:
            self._aborted.add(id(sock))

    def shutdown_request(self, request: socket.socket) -> None:
        with self._conn_lock:
            aborted = id(request) in self._aborted
            self._aborted.discard(id(request))
        if aborted:
            self.close_request(request)  # no FIN first: the close sends the RST
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, name: str = "wsgi-server") -> WSGIServer:
        """Serve in a daemon thread and return ``self``."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name=name)
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close idle keep-alive connections, release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._conn_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()
