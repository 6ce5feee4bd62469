"""Readers of the consistent-reads stress test (``test_consistent_reads.py``), in threads and in processes.

A reader globs, lists, looks up and reads the files of a dataset known in advance (regenerated from its seed,
so a reader process needs only the seed) through ``hybrid://`` and the mount while migrations move them, and
counts what it saw: operations, files listed, bytes read, and every missing, duplicated, unexpected or wrong
answer (and any other error), keeping the first few problems' descriptions.

Reader processes are started once (spawned) and serve many rounds: :func:`process_main` takes a round's
settings from its queue, reads until the round's stop event, and answers with its counts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import traceback
from collections import Counter
from typing import Any

MAX_PROBLEMS = 10
DIRECTORIES = ("a", "b", "c/deep")


def dataset(seed: int, files: int) -> dict[str, bytes]:
    """``files`` files (relative name -> bytes) across :data:`DIRECTORIES`: most small, a few of 0.3-1.5 MiB
    (so reads span many requests while files move), one empty."""
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    for i in range(files):
        directory = DIRECTORIES[i % len(DIRECTORIES)]
        size = 0 if i == 0 else (rng.randrange(300_000, 1_500_000) if i % 7 == 3 else rng.randrange(1, 64 * 1024))
        out[f"{directory}/part-{i:03d}.bin"] = rng.randbytes(size)
    return out


class _FollowCounter(logging.Handler):
    """Counts the mount's "continuing from member" messages (a read that followed a moved file) of one thread."""

    def __init__(self, thread: int) -> None:
        super().__init__(logging.INFO)
        self.thread, self.count = thread, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and "continuing from member" in record.getMessage():
            self.count += 1


class Reader:
    """One reader's loop over the operations; ``started`` counts operations begun (a shared counter), ``moving``
    is non-zero while a migration runs (operations begun then are counted as ``during_moves``)."""

    def __init__(self, settings: dict[str, Any], started, stop, moving) -> None:
        from airflow_hybrid.mount.filesystem import HybridFileSystem

        self.mount_id: str = settings["mount"]
        self.root: str = settings["root"]
        self.files = {f"{self.root}/{name}": data for name, data in dataset(settings["seed"], settings["files"]).items()}
        self.digests = {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}
        self.rng = random.Random(settings["reader_seed"])
        self.started, self.stop, self.moving = started, stop, moving
        self.fs = HybridFileSystem()
        self.mount = self.fs.mount(self.mount_id)
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []

    # -- bookkeeping ----------------------------------------------------------------------------------
    def problem(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{kind}: {text}")

    def url(self, path: str) -> str:
        return f"hybrid://{self.mount_id}/{path}"

    def logical(self, name: str) -> str:
        return name.removeprefix(f"{self.mount_id}/")

    def check_listing(self, op: str, listed: list[str], expected: set[str]) -> None:
        self.counts["listings"] += 1
        self.counts["listed"] += len(listed)
        seen = Counter(listed)
        for path, times in seen.items():
            if times > 1:
                self.problem("duplicated", f"{op}: {path} listed {times} times")
        for path in sorted(expected - set(seen)):
            self.problem("missing", f"{op}: {path} not listed")
        for path in sorted(set(seen) - expected):
            self.problem("unexpected", f"{op}: {path} listed but not in the dataset")

    def check_bytes(self, op: str, path: str, data: bytes, start: int = 0) -> None:
        self.counts["reads"] += 1
        self.counts["bytes"] += len(data)
        want = self.files[path]
        if start == 0 and len(data) == len(want):
            ok = hashlib.sha256(data).hexdigest() == self.digests[path]
        else:
            ok = data == want[start : start + len(data)] and start + len(data) <= len(want)
        if not ok:
            self.problem("wrong", f"{op}: {path} at {start}: {len(data)} bytes differ from the file's own")

    # -- operations ---------------------------------------------------------------------------------------
    def directory_files(self, directory: str) -> set[str]:
        prefix = f"{self.root}/{directory}/"
        return {p for p in self.files if p.startswith(prefix) and "/" not in p[len(prefix) :]}

    def glob_all(self) -> None:
        listed = [self.logical(p) for p in self.fs.glob(self.url(f"{self.root}/**/*.bin"))]
        self.check_listing("fs.glob(**)", listed, set(self.files))

    def glob_directory(self) -> None:
        directory = self.rng.choice(DIRECTORIES)
        listed = [self.logical(p) for p in self.fs.glob(self.url(f"{self.root}/{directory}/part-*.bin"))]
        self.check_listing(f"fs.glob({directory})", listed, self.directory_files(directory))

    def ls_directory(self) -> None:
        directory = self.rng.choice(DIRECTORIES)
        entries = self.fs.ls(self.url(f"{self.root}/{directory}"), detail=True)
        listed = [self.logical(e["name"]) for e in entries if e["type"] == "file"]
        self.check_listing(f"fs.ls({directory})", listed, self.directory_files(directory))

    def find(self) -> None:
        listed = [self.logical(p) for p in self.fs.find(self.url(self.root))]
        self.check_listing("fs.find", listed, set(self.files))

    def glob_engine(self) -> None:
        from airflow_hybrid.mount.globs import iter_files

        listed = [f.path for f in iter_files(self.mount, [f"{self.root}/*/part-*.bin", f"{self.root}/c/**"])]
        self.check_listing("cache_ops.iter_files", listed, set(self.files))

    def walk(self) -> None:
        listed = [f.path for f in self.mount.walk_files(self.root)]
        self.check_listing("mount.walk_files", listed, set(self.files))

    def pick(self) -> str:
        return self.rng.choice(sorted(self.files))

    def read_fs(self) -> None:
        path = self.pick()
        with self.fs.open(self.url(path), "rb", block_size=64 * 1024) as f:
            data = b"".join(iter(lambda: f.read(48 * 1024), b""))
        self.check_bytes("fs.open", path, data)

    def read_range(self) -> None:
        path = self.pick()
        size = len(self.files[path])
        start = self.rng.randrange(size) if size else 0
        end = min(size, start + self.rng.randrange(1, 200_000))
        self.check_bytes("fs.cat_file", path, self.fs.cat_file(self.url(path), start=start, end=end), start)

    def read_mount(self) -> None:
        path = self.pick()
        with self.mount.open_read(path) as stream:
            data = b"".join(iter(lambda: stream.read(32 * 1024), b""))
        self.check_bytes("mount.open_read", path, data)

    def lookup(self) -> None:
        path = self.pick()
        self.counts["lookups"] += 1
        size = self.fs.info(self.url(path))["size"]
        if size != len(self.files[path]):
            self.problem("wrong", f"fs.info: {path} has size {size}, not {len(self.files[path])}")
        if not self.mount.exists(path):
            self.problem("missing", f"mount.exists: {path} not found")

    OPERATIONS = (
        "glob_all", "glob_directory", "ls_directory", "find", "glob_engine", "walk",
        "read_fs", "read_fs", "read_range", "read_mount", "lookup", "lookup",
    )

    def run(self) -> dict[str, Any]:
        follows = _FollowCounter(threading.get_ident())
        mount_log = logging.getLogger("airflow_hybrid.mount.union")
        mount_log.addHandler(follows)
        mount_log.setLevel(logging.INFO)
        try:
            while not self.stop.is_set():
                with self.started.get_lock():
                    self.started.value += 1
                name = self.rng.choice(self.OPERATIONS)
                self.counts["operations"] += 1
                if self.moving.value:
                    self.counts["during_moves"] += 1
                try:
                    getattr(self, name)()
                except FileNotFoundError as err:
                    self.problem("missing", f"{name}: {type(err).__name__}: {err}")
                except Exception as err:
                    self.problem("errors", f"{name}: {type(err).__name__}: {err}\n{traceback.format_exc(limit=6)}")
        finally:
            mount_log.removeHandler(follows)
        self.counts["followed"] = follows.count
        return {"counts": dict(self.counts), "problems": self.problems}


def run_thread(settings: dict[str, Any], started, stop, moving, out: list) -> threading.Thread:
    """Start a reader thread; its result is appended to ``out``."""

    def target() -> None:
        try:
            out.append(Reader(settings, started, stop, moving).run())
        except Exception as err:  # the reader could not start: reported, never silent
            out.append({"counts": {"errors": 1}, "problems": [f"reader failed: {err!r}"]})

    thread = threading.Thread(target=target, name=f"reader-{settings['reader_seed']}", daemon=True)
    thread.start()
    return thread


def process_main(commands, results, started, stop, moving) -> None:
    """Entry of a spawned reader process: one round per command (``None`` ends it)."""
    while True:
        settings = commands.get()
        if settings is None:
            return
        os.environ.update(settings["env"])
        try:
            results.put(Reader(settings, started, stop, moving).run())
        except Exception as err:
            results.put({"counts": {"errors": 1}, "problems": [f"reader failed: {err!r}\n{traceback.format_exc()}"]})
