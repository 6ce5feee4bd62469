"""Deterministic interleavings of a mount's member requests with the steps of a move (tests support).

A :class:`Schedule` counts the requests a mount makes of its members (through :class:`HookedStore` wrappers)
and runs the steps of a :class:`Move` -- the copy to the destination, then the removal from the source, as
``Migrator`` does them -- just before chosen requests. :func:`interleavings` enumerates every placement of the
two steps among the requests of one operation, so a test can check an operation under all of them.

A hooked stream models the worst case for reads: every ``read`` is a new ranged request of the member (as
after a dropped connection), so a read made after the removal finds the file gone, as a real store's reopen
does.
"""

from __future__ import annotations

import dataclasses
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.mount.globs import iter_files
from airflow_hybrid.mount.options import MountSpec
from airflow_hybrid.mount.resolver import resolve_locations
from airflow_hybrid.stores.base import FileInfo, Store, StoreFeatures


class Schedule:
    """Counts member requests; ``at(n, step)`` runs ``step`` just before request ``n`` (0-based)."""

    def __init__(self) -> None:
        self.requests = 0
        self.log: list[str] = []
        self._steps: dict[int, list[Callable[[], Any]]] = {}
        self.enabled = True

    def at(self, n: int, step: Callable[[], Any]) -> None:
        self._steps.setdefault(n, []).append(step)

    def tick(self, what: str) -> None:
        if not self.enabled:
            return
        for step in self._steps.pop(self.requests, []):
            step()
        self.requests += 1
        self.log.append(what)

    def pending(self) -> int:
        return sum(len(steps) for steps in self._steps.values())

    def run_pending(self) -> None:
        """Run the steps placed after the last request (the operation made fewer requests)."""
        for n in sorted(self._steps):
            for step in self._steps.pop(n):
                step()


class _ReopeningStream(io.RawIOBase):
    """Every ``read`` is a new ranged request of the member (the request is counted first)."""

    def __init__(self, store: HookedStore, path: str, offset: int, length: int | None) -> None:
        super().__init__()
        self._store, self._path = store, path
        self._pos = offset
        self._end = None if length is None else offset + length

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(64 * 1024), b""))
        if self._end is not None:
            size = min(size, self._end - self._pos)
        if self._store.max_read:
            size = min(size, self._store.max_read)
        if size <= 0:
            return b""
        self._store.tick("read", self._path)
        with self._store.inner.open_read(self._path, offset=self._pos, length=size) as stream:
            data = stream.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class HookedStore(Store):
    """A member store whose metadata requests, listings and reads are counted by a :class:`Schedule`.

    ``inner`` must be a real store: every call is delegated to it (extra methods too)."""

    def __init__(self, name: str, inner: Store, schedule: Schedule, *, max_read: int | None = None) -> None:
        super().__init__(inner.root_uri)
        self.name, self.inner, self.schedule = name, inner, schedule
        #: At most this many bytes per read request (short reads, as a network stream gives).
        self.max_read = max_read
        self.scheme = inner.scheme

    def __getattr__(self, attr: str) -> Any:  # set_times, list_open_uploads, ...
        return getattr(self.inner, attr)

    @property
    def features(self) -> StoreFeatures:
        return self.inner.features

    def tick(self, op: str, path: str) -> None:
        self.schedule.tick(f"{self.name}.{op}({path})")

    def uri(self, path: str) -> str:
        return self.inner.uri(path)

    def info(self, path: str) -> FileInfo:
        self.tick("info", path)
        return self.inner.info(path)

    def exists(self, path: str) -> bool:
        self.tick("exists", path)
        return self.inner.exists(path)

    def list(self, path: str) -> Iterator[FileInfo]:
        self.tick("list", path)
        return iter(list(self.inner.list(path)))  # the listing is taken at the instant of the request

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        self.tick("walk", path)
        return iter(list(self.inner.walk_files(path)))

    def checksum(self, path: str):
        self.tick("checksum", path)
        return self.inner.checksum(path)

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        self.tick("open", path)
        if self.inner.info(path).is_dir:  # FileNotFoundError / IsADirectoryError as the store's open raises
            raise IsADirectoryError(self.uri(path))
        return _ReopeningStream(self, path, offset, length)  # type: ignore[return-value]

    def write(
        self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False
    ) -> FileInfo:
        return self.inner.write(path, stream, size_hint=size_hint, if_absent=if_absent)

    def delete(self, path: str, recursive: bool = False) -> bool:
        return self.inner.delete(path, recursive=recursive)

    def mkdir(self, path: str) -> None:
        self.inner.mkdir(path)

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Move:
    """One file moved as a migration moves it: written whole to ``dst`` (atomically visible), then removed
    from ``src``. The stores are the real (unhooked) ones, so the steps are not counted as requests."""

    src: Store
    dst: Store
    path: str
    data: bytes
    done: list[str] = field(default_factory=list)

    def copy(self) -> None:
        self.dst.write(self.path, io.BytesIO(self.data))
        self.done.append("copy")

    def remove(self) -> None:
        assert self.src.delete(self.path)
        self.done.append("remove")

    def reset(self) -> None:
        """The file in ``src`` only, as before the move."""
        if not self.src.exists(self.path):
            self.src.write(self.path, io.BytesIO(self.data))
        self.dst.delete(self.path)
        self.done.clear()


def interleavings(requests: int, *, slack: int = 2) -> Iterator[tuple[int, int]]:
    """Every ``(copy_before, remove_before)`` with ``copy_before <= remove_before``: the copy runs just before
    request ``copy_before`` and the removal just before request ``remove_before``; ``slack`` more positions
    than the dry run's ``requests`` cover operations that make more requests when the file moves."""
    last = requests + slack
    for copy_before in range(last + 1):
        for remove_before in range(copy_before, last + 1):
            yield copy_before, remove_before


# -- a world to run operations in, and the operations -------------------------------------------------
PRIORITIES = ("s3,hdfs", "hdfs,s3")
DIRECTIONS = (("hdfs", "s3"), ("s3", "hdfs"))


@pytest.fixture(params=PRIORITIES)
def priority(request) -> str:
    """The mount's read priority: each of ``PRIORITIES``."""
    return request.param


@pytest.fixture(params=DIRECTIONS, ids=lambda d: f"{d[0]}->{d[1]}")
def direction(request) -> tuple[str, str]:
    """The move's (source, target) members: each of ``DIRECTIONS``."""
    return request.param
MOVING = "d/moving.bin"
DATA = random.Random(11).randbytes(10_000)
STATIC = {"d/only-hdfs.bin": ("hdfs", b"h" * 300), "d/only-s3.bin": ("s3", b"s" * 200), "d/sub/x.bin": ("hdfs", b"x")}


class World:
    """Members ``s3`` and ``hdfs`` (real stores, hooked), the mount ``lake`` over them as ``spec`` says (read
    priority, cache), the files of :data:`STATIC` and the move of :data:`MOVING` in ``direction``.

    :param chunk: bytes per read request of a member, and the read size of the operations' readers.
    """

    def __init__(self, inner: dict[str, Store], spec: MountSpec, direction: tuple[str, str], *, chunk: int) -> None:
        self.schedule = Schedule()
        self.inner = inner
        self.chunk = chunk
        stores = {name: HookedStore(name, store, self.schedule, max_read=chunk) for name, store in inner.items()}
        self.mount = HybridMount(dataclasses.replace(spec, name="lake"), stores=stores)
        for path, (member, data) in STATIC.items():
            self.inner[member].write(path, io.BytesIO(data))
        src, dst = direction
        self.move = Move(self.inner[src], self.inner[dst], MOVING, DATA)

    def fs(self) -> HybridFileSystem:
        return HybridFileSystem(mounts={"lake": self.mount}, skip_instance_cache=True)

    def reset(self) -> None:
        self.schedule.enabled = False
        self.move.reset()
        if self.mount.cache is not None:
            self.mount.cache.invalidate("")  # copies and stored listings of the previous interleaving
        self.schedule.__init__()

    def close(self) -> None:
        if self.mount.cache is not None:
            self.mount.cache.close()


Check = Callable[[Any], "str | None"]


def failures_under_interleavings(world: World, op: Callable[[World], Any], check: Check) -> tuple[int, list[str]]:
    """Run ``op`` once without a move (it must pass) and then under every placement of the move's steps."""
    world.reset()
    baseline = check(op(world))
    assert baseline is None, f"fails without a move: {baseline}"
    requests = world.schedule.requests
    runs, failures = 0, []
    for copy_before, remove_before in interleavings(requests):
        world.reset()
        world.schedule.at(copy_before, world.move.copy)
        world.schedule.at(remove_before, world.move.remove)
        try:
            problem = check(op(world))
        except Exception as err:  # a lookup or read that failed is a failure of the contract
            problem = f"{type(err).__name__}: {err}"
        log = list(world.schedule.log)
        world.schedule.run_pending()
        runs += 1
        if problem:
            failures.append(f"copy before request {copy_before}, removal before {remove_before}: {problem} {log}")
    return runs, failures


def check_every_interleaving(world: World, op: Callable[[World], Any], check: Check) -> int:
    """Fail naming the first failing interleavings of ``op`` with the move (if any); the number of runs."""
    runs, failures = failures_under_interleavings(world, op, check)
    assert not failures, f"{len(failures)} of {runs} interleavings:\n" + "\n".join(failures[:5])
    return runs


def listed_once(names: list[str]) -> str | None:
    """The moving file and every other file of ``d`` exactly once."""
    expected = {MOVING, *STATIC}
    for path in expected:
        count = names.count(path)
        if count != 1:
            return f"{path} listed {count} times in {sorted(names)}"
    return None


def found(value: Any) -> str | None:
    return None if value else f"not found: {value!r}"


def same_bytes(data: bytes) -> str | None:
    return None if data == DATA else f"read {len(data)} bytes, not the file's own"


def read_chunks(stream, chunk: int) -> bytes:
    with stream:
        return b"".join(iter(lambda: stream.read(chunk), b""))


# -- operations -----------------------------------------------------------------------------------------
def _mount_ls(w: World) -> list[str]:
    entries = list(w.mount.ls("d"))
    names = [e.path for e in entries]
    return [n for n in names if n != "d/sub"] + (["d/sub/x.bin"] if "d/sub" in names else [])


LISTINGS: dict[str, Callable[[World], list[str]]] = {
    "mount.ls": _mount_ls,
    "mount.walk_files": lambda w: [f.path for f in w.mount.walk_files("d")],
    "cache_ops.glob": lambda w: [f.path for f in iter_files(w.mount, "d/*.bin")] + ["d/sub/x.bin"],
    "cache_ops.glob-**": lambda w: [f.path for f in iter_files(w.mount, "d/**")],
    "fs.glob": lambda w: [p.removeprefix("lake/") for p in w.fs().glob("hybrid://lake/d/**/*.bin")],
    "fs.find": lambda w: [p.removeprefix("lake/") for p in w.fs().find("hybrid://lake/d")],
}

LOOKUPS: dict[str, Callable[[World], Any]] = {
    "mount.resolve": lambda w: w.mount.resolve(MOVING)[1].size == len(DATA),
    "mount.info": lambda w: w.mount.info(MOVING).size == len(DATA),
    "mount.exists": lambda w: w.mount.exists(MOVING),
    "mount.member_of": lambda w: w.mount.member_of(MOVING) in ("s3", "hdfs"),
    "fs.info": lambda w: w.fs().info(f"hybrid://lake/{MOVING}")["size"] == len(DATA),
    "fs.exists": lambda w: w.fs().exists(f"hybrid://lake/{MOVING}"),
    "resolver.file": lambda w: resolve_locations(w.mount, MOVING)[0].bytes == len(DATA),
}


def _fs_open(w: World) -> bytes:
    with w.fs().open(f"hybrid://lake/{MOVING}", "rb", block_size=w.chunk, cache_type="none") as f:
        return b"".join(iter(lambda: f.read(w.chunk), b""))


READS: dict[str, Callable[[World], bytes]] = {
    "mount.open_read": lambda w: read_chunks(w.mount.open_read(MOVING), w.chunk),
    "mount.open_read-range": lambda w: DATA[:1234] + read_chunks(w.mount.open_read(MOVING, offset=1234), w.chunk),
    "fs.open": _fs_open,
    "fs.cat_file": lambda w: w.fs().cat_file(f"hybrid://lake/{MOVING}"),
}
