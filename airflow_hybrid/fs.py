"""The ``hybrid://`` fsspec filesystem: a union mount as a path space for any Python engine.

``hybrid://<mount_conn_id>/<path>`` names ``<path>`` in the mount defined by the ``hybrid_mount`` connection
``<mount_conn_id>``. Registered with fsspec (entry point) and with Airflow (provider ``filesystems``), so
``ObjectStoragePath("hybrid://onprem_union/store_sales/")``, pandas, pyarrow and DuckDB (after
``duckdb.register_filesystem(HybridFileSystem())``) read it unchanged before and after a migration.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.stores.base import FileInfo, normalize_path

#: Airflow's ObjectStoragePath looks these up in the provider's ``filesystems`` modules.
schemes = ["hybrid"]

_PIPE_DEPTH = 4


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> HybridFileSystem:
    """Airflow entry point. The mount comes from the URL's host, so ``conn_id`` is not needed."""
    return HybridFileSystem(**(storage_options or {}))


class HybridFileSystem(AbstractFileSystem):
    """fsspec filesystem over :class:`~airflow_hybrid.mount.HybridMount` instances, one per connection id."""

    protocol = ("hybrid",)
    root_marker = ""

    def __init__(self, mounts: dict[str, HybridMount] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mounts: dict[str, HybridMount] = dict(mounts or {})
        self._lock = threading.Lock()

    # -- paths ------------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("hybrid://"):
            path = path[len("hybrid://") :]
        elif path.startswith("hybrid:"):
            path = path[len("hybrid:") :]
        return path.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def _split(self, path: str) -> tuple[HybridMount, str]:
        stripped = self._strip_protocol(path)
        mount_id, _, rel = stripped.partition("/")
        if not mount_id:
            raise ValueError(f"{path!r}: expected hybrid://<mount_conn_id>/<path>")
        return self.mount(mount_id), normalize_path(rel)

    def mount(self, conn_id: str) -> HybridMount:
        """The mount for connection ``conn_id``, built once per filesystem instance."""
        with self._lock:
            if conn_id not in self._mounts:
                self._mounts[conn_id] = HybridMount.from_conn_id(conn_id)
            return self._mounts[conn_id]

    def unstrip_protocol(self, name: str) -> str:
        return f"hybrid://{self._strip_protocol(name)}"

    # -- metadata ---------------------------------------------------------------------------------
    def _entry(self, mount: HybridMount, info: FileInfo) -> dict[str, Any]:
        return {
            "name": f"{mount.name}/{info.path}" if info.path else mount.name,
            "size": info.size,
            "type": "directory" if info.is_dir else "file",
            "mtime": info.mtime,
            "created": info.mtime,
            "ETag": info.etag,
        }

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        mount, rel = self._split(path)
        if not rel:
            return {"name": mount.name, "size": 0, "type": "directory"}
        return self._entry(mount, mount.info(rel))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        mount, rel = self._split(path)
        try:
            entries = [self._entry(mount, e) for e in mount.ls(rel)]
        except FileNotFoundError:
            raise FileNotFoundError(self.unstrip_protocol(path)) from None
        if not entries and rel:
            info = mount.info(rel)
            if not info.is_dir:
                entries = [self._entry(mount, info)]
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    def modified(self, path: str):
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    # -- mutation ---------------------------------------------------------------------------------
    def _rm(self, path: str) -> None:
        mount, rel = self._split(path)
        mount.delete(rel, recursive=False)

    def rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in [path] if isinstance(path, str) else path:
            mount, rel = self._split(p)
            mount.delete(rel, recursive=recursive)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        mount, rel = self._split(path)
        mount.mkdir(rel)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.mkdir(path)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs) -> None:
        mount1, rel1 = self._split(path1)
        mount2, rel2 = self._split(path2)
        if mount1 is not mount2:
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        mount1.rename(rel1, rel2)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src_mount, src_rel = self._split(path1)
        dst_mount, dst_rel = self._split(path2)
        with src_mount.open_read(src_rel) as stream:
            dst_mount.write(dst_rel, stream)

    # -- data -------------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any):
        mount, rel = self._split(path)
        if "r" in mode:
            return HybridReadFile(self, path, mount, rel, block_size=block_size, **kwargs)
        if "w" in mode:
            return HybridWriteFile(self, path, mount, rel, block_size=block_size, **kwargs)
        raise ValueError(f"{path}: mode {mode!r} not supported (use rb or wb)")

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        mount, rel = self._split(path)
        size = mount.info(rel).size
        start = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        end = size if end is None else (end if end >= 0 else max(size + end, 0))
        if end <= start:
            return b""
        with mount.open_read(rel, offset=start, length=end - start) as stream:
            return stream.read()


class HybridReadFile(AbstractBufferedFile):
    """Read file: sequential reads stream over one open ranged request; seeks reopen at the new offset."""

    def __init__(self, fs: HybridFileSystem, path: str, mount: HybridMount, rel: str, **kwargs: Any) -> None:
        info = mount.info(rel)
        if info.is_dir:
            raise IsADirectoryError(f"hybrid://{mount.name}/{rel} is a directory")
        kwargs.setdefault("cache_type", "readahead")
        block_size = kwargs.pop("block_size", None) or 4 * 1024 * 1024
        super().__init__(fs, path, mode="rb", block_size=block_size, size=info.size, **kwargs)
        self.mount, self.rel = mount, rel
        self._stream = None
        self._stream_pos = -1

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        if self._stream is None or self._stream_pos != start:
            self._close_stream()
            self._stream = self.mount.open_read(self.rel, offset=start)
            self._stream_pos = start
        chunks, want = [], end - start
        while want > 0:
            chunk = self._stream.read(want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        data = b"".join(chunks)
        self._stream_pos += len(data)
        return data

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()


class _QueueReader:
    """The read end of a bounded in-memory pipe (at most ``_PIPE_DEPTH`` chunks in flight)."""

    def __init__(self, chunks: queue.Queue) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buffer) < n):
            chunk = self._chunks.get()
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
        if n < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def close(self) -> None:
        pass


class HybridWriteFile(AbstractBufferedFile):
    """Write file: blocks are piped to ``HybridMount.write`` running in a thread (streamed, bounded memory)."""

    def __init__(self, fs: HybridFileSystem, path: str, mount: HybridMount, rel: str, **kwargs: Any) -> None:
        block_size = kwargs.pop("block_size", None) or 8 * 1024 * 1024
        super().__init__(fs, path, mode="wb", block_size=block_size, **kwargs)
        self.mount, self.rel = mount, rel
        self._chunks: queue.Queue = queue.Queue(maxsize=_PIPE_DEPTH)
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None

    def _run_writer(self) -> None:
        try:
            self.mount.write(self.rel, _QueueReader(self._chunks))
        except BaseException as err:  # surfaced in _upload_chunk / commit
            self._error = err
            while True:  # drain so the producer never blocks forever
                try:
                    if self._chunks.get(timeout=0.1) is None:
                        break
                except queue.Empty:
                    if self._producer_done:
                        break

    _producer_done = False

    def _initiate_upload(self) -> None:
        self._writer = threading.Thread(target=self._run_writer, name=f"hybrid-write-{self.rel}", daemon=True)
        self._writer.start()

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._error is not None:
            self._producer_done = True
            raise OSError(f"write to hybrid://{self.mount.name}/{self.rel} failed: {self._error}") from self._error
        self.buffer.seek(0)
        data = self.buffer.read()
        if data:
            self._chunks.put(data)
        if final:
            self._chunks.put(None)
            self._producer_done = True
            self._writer.join()
            if self._error is not None:
                raise OSError(
                    f"write to hybrid://{self.mount.name}/{self.rel} failed: {self._error}"
                ) from self._error
        return True

    def discard(self) -> None:
        if self._writer is not None:
            self._error = self._error or RuntimeError("discarded")
            self._chunks.put(None)
