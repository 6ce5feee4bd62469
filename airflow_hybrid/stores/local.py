"""A local directory as a store (tests, cache tiers on /dev/shm or SSD, and small deployments)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from airflow_hybrid.stores.base import CHUNK_SIZE, FileInfo, Store, normalize_path

_UMASK = os.umask(0)
os.umask(_UMASK)


class _RangeReader(BinaryIO):
    """File object limited to ``length`` bytes from its current position."""

    def __init__(self, raw: BinaryIO, length: int | None) -> None:
        self._raw = raw
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._raw.read(n)
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalStore(Store):
    """Files under a local directory; writes go to a temporary file renamed into place."""

    scheme = "file"

    def __init__(self, root_uri: str) -> None:
        parsed = urlparse(root_uri)
        root = parsed.path if parsed.scheme == "file" else root_uri
        if not root:
            raise ValueError(f"local store needs a directory, got {root_uri!r}")
        self.root = Path(root).resolve()
        super().__init__(f"file://{self.root}")

    def _local(self, path: str) -> Path:
        return self.root / normalize_path(path)

    def _info(self, rel: str, st: os.stat_result, is_dir: bool) -> FileInfo:
        return FileInfo(path=rel, size=0 if is_dir else st.st_size, mtime=st.st_mtime, is_dir=is_dir, atime=st.st_atime)

    def info(self, path: str) -> FileInfo:
        rel = normalize_path(path)
        local = self._local(rel)
        try:
            st = local.stat()
        except (FileNotFoundError, NotADirectoryError):  # NotADirectory: a parent is a file
            raise FileNotFoundError(f"{self.uri(rel)} does not exist") from None
        return self._info(rel, st, local.is_dir())

    def list(self, path: str) -> Iterator[FileInfo]:
        rel = normalize_path(path)
        local = self._local(rel)
        if not local.is_dir():
            if local.exists():
                yield self.info(rel)
                return
            raise FileNotFoundError(f"{self.uri(rel)} does not exist")
        with os.scandir(local) as entries:
            for entry in entries:
                if entry.name.startswith(".hybrid-tmp-"):
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    is_dir = entry.is_dir()
                    yield self._info(child, entry.stat(), is_dir)
                except FileNotFoundError:
                    continue  # removed while listing

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        local = self._local(path)
        try:
            raw = open(local, "rb")  # noqa: SIM115 - returned to the caller
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(f"{self.uri(path)} does not exist or is not a file") from None
        if offset:
            raw.seek(offset)
        return _RangeReader(raw, length) if length is not None else raw

    def write(self, path: str, stream: BinaryIO, size_hint: int | None = None) -> FileInfo:
        rel = normalize_path(path)
        local = self._local(rel)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hybrid-tmp-", dir=local.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    out.write(chunk)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.info(rel)

    def delete(self, path: str, recursive: bool = False) -> bool:
        local = self._local(path)
        if not local.exists():
            return False
        if local.is_dir():
            if recursive:
                shutil.rmtree(local)
            else:
                local.rmdir()
        else:
            local.unlink()
        return True

    def mkdir(self, path: str) -> None:
        self._local(path).mkdir(parents=True, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        target = self._local(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._local(src), target)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(src)} does not exist") from None
