"""LocalStore.list_sorted: the base default's answers without a stat per entry, and snapshots of big directories."""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import time

import pytest

from airflow_hybrid.stores.base import PathEscapeError, Store, child_key
from airflow_hybrid.stores.local import LocalStore

OLD = 1_600_000_000  # an mtime far from the racy window

TRICKY_FILES = ["a-b", "a.txt", "a/x", "a/y/z", "a0", "b", "é", "日本語.csv", "with space", "with space dir/in",
                "new\nline", "x-1", "x.txt", "x0/f", "zz"]


def _settle(path) -> None:
    """Give a directory an old mtime, as if last changed long before (outside the racy window)."""
    os.utime(path, (OLD, OLD))


def _without_waiting(store: LocalStore) -> LocalStore:
    """A ctime cannot be set back, and the tests do not sleep: count a directory as settled unless its times
    are an hour ahead of the scan (the rule itself: test_a_recently_changed_directory_is_not_snapshotted)."""
    store.listing_racy_seconds = -3600
    return store


def _write(store: LocalStore, path: str, data: bytes = b"data") -> None:
    store.write(path, io.BytesIO(data))


def _default(store: Store, *args) -> list:
    """The base default (a full list() scan) for comparison."""
    return Store.list_sorted(store, *args)


def _view(entries) -> list[tuple]:
    return [(e.path, e.size, e.mtime, e.is_dir) for e in entries]


@pytest.fixture
def tricky(tmp_path):
    store = LocalStore(str(tmp_path / "root"))
    for path in TRICKY_FILES:
        _write(store, path, path.encode())
    undecodable = os.fsencode(str(store.root)) + b"/\xff\xfename"  # surrogate-escaped in str
    with open(undecodable, "wb") as out:
        out.write(b"raw")
    return store


def _markers(store: LocalStore, path: str) -> list:
    keys = [child_key(e) for e in _default(store, path, None, 1000)]
    extra = [None, "", "\x00", "a", "a/", "a/x", "a/y/z", "a/\x00", "a\x00", "a-", "b\x00", "x/", "x/q", "zzz", "~"]
    return extra + keys + [k + "\x00" for k in keys] + [k.rstrip("/") for k in keys if k.endswith("/")]


@pytest.mark.parametrize("snapshot", [False, True], ids=["scan", "snapshot"])
def test_same_pages_as_the_default_for_every_marker_prefix_and_limit(tricky, snapshot):
    if snapshot:
        tricky.listing_snapshot_threshold = 3
        tricky.listing_snapshot_run = 4
        tricky.listing_snapshot_index_every = 2
        _without_waiting(tricky)
        _settle(tricky.root)
        _settle(tricky.root / "a")
    for path in ("", "a"):
        for marker in _markers(tricky, path):
            for prefix in ("", "a", "a.", "x", "é", "with", "nomatch", "a/"):
                for limit in (0, 1, 2, 3, 1000):
                    got = tricky.list_sorted(path, marker, limit, prefix)
                    assert _view(got) == _view(_default(tricky, path, marker, limit, prefix)), (path, marker, prefix,
                                                                                                 limit)
    assert ("" in tricky._lister.cache) is snapshot


def test_a_missing_directory_a_file_and_a_missing_root_list_nothing(tmp_path, tricky):
    for path in ("missing", "a/missing/deeper", "a.txt", "a/x"):
        assert tricky.list_sorted(path) == [] == _default(tricky, path)
    assert LocalStore(str(tmp_path / "no-root")).list_sorted("") == []


def test_links_and_temporary_files_are_left_out(tricky, caplog):
    root = tricky.root
    os.symlink(root / "a.txt", root / "link-to-file")
    os.symlink(root / "a", root / "link-to-dir")
    os.symlink("/nowhere", root / "dangling")
    (root / ".hybrid-tmp-0123").write_bytes(b"half written")
    with caplog.at_level(logging.WARNING, logger="airflow_hybrid.stores.local"):
        got = tricky.list_sorted("", None, 1000)
    names = [e.name for e in got]
    assert not {"link-to-file", "link-to-dir", "dangling", ".hybrid-tmp-0123"} & set(names)
    assert _view(got) == _view(_default(tricky, "", None, 1000))
    assert "link-to-dir is a symbolic link; left out" in caplog.text
    with pytest.raises(PathEscapeError, match="symbolic link"):
        tricky.list_sorted("link-to-dir")  # a path through a link is refused, as list() refuses it


def _big(tmp_path, files: int = 60, dirs: int = 5) -> LocalStore:
    store = LocalStore(str(tmp_path / "big"))
    store.listing_snapshot_threshold = 20
    store.listing_snapshot_run = 7
    store.listing_snapshot_fan_in = 2
    store.listing_snapshot_index_every = 3
    _without_waiting(store)
    for i in range(files):
        (store.root / "d").mkdir(parents=True, exist_ok=True)
        (store.root / "d" / f"f{i:03d}").write_bytes(b"x" * i)
    for i in range(dirs):
        (store.root / "d" / f"f{i:03d}.dir").mkdir()
    _settle(store.root / "d")
    return store


def _pages(store: LocalStore, path: str, limit: int) -> list[str]:
    keys, marker = [], None
    while page := store.list_sorted(path, marker, limit):
        keys += [child_key(e) for e in page]
        marker = keys[-1]
    return keys


def test_a_big_directory_is_snapshotted_with_bounded_runs_and_pages_equal_a_full_listing(tmp_path):
    store = _big(tmp_path)
    full = [child_key(e) for e in _default(store, "d", None, 10_000)]
    assert len(full) == 65
    assert _pages(store, "d", 7) == full
    stats = store._lister.last_build
    assert "d" in store._lister.cache
    assert (stats.keys, stats.runs, stats.largest_run) == (65, math.ceil(65 / 7), 7)  # never more than a run
    assert stats.merge_passes > 1  # 10 runs merged 2 at a time
    spool = store._lister.cache.directory()
    assert len(os.listdir(spool)) == 1  # the runs are gone, the snapshot stays

    def no_scan(*_args):
        raise AssertionError("a page from the snapshot scanned the directory")

    store._lister._scan = no_scan
    assert _pages(store, "d", 7) == full
    middle = store.list_sorted("d", "f030", 5)
    assert _view(middle) == _view(_default(store, "d", "f030", 5))
    assert [e.size for e in middle] == [31, 32, 33, 34, 35]  # stat'ed now
    (store.root / "d" / "f031").write_bytes(b"longer now")  # a file's change leaves the directory as it was
    assert store.list_sorted("d", "f030", 1)[0].size == len(b"longer now")
    store.close()
    assert not os.path.exists(spool)
    assert _pages(LocalStore(str(store.root)), "d", 7) == full


def test_a_file_added_or_removed_after_the_snapshot_shows_at_once(tmp_path):
    store = _big(tmp_path)
    store.list_sorted("d")
    assert "d" in store._lister.cache
    _write(store, "d/f0305")
    assert "f0305" in [e.name for e in store.list_sorted("d", "f030", 2)]
    assert store._lister.last_build.keys == 66  # a new snapshot for the directory's new identity
    assert store.delete("d/f0305") and store.delete("d/f040")
    os.utime(store.root / "d", (OLD + 1, OLD + 1))
    assert [e.name for e in store.list_sorted("d", "f030", 10)] == [f"f{i:03d}" for i in range(31, 40)] + ["f041"]
    assert _pages(store, "d", 4) == [child_key(e) for e in _default(store, "d", None, 10_000)]
    assert store._lister.last_build.keys == 64


def test_a_recently_changed_directory_is_not_snapshotted(tmp_path):
    store = _big(tmp_path)
    store.listing_racy_seconds = LocalStore.listing_racy_seconds
    _settle(store.root / "d")  # an old mtime, but its ctime is now: a change in this tick could go unseen
    assert _pages(store, "d", 10) == [child_key(e) for e in _default(store, "d", None, 10_000)]
    assert "d" not in store._lister.cache and store._lister.last_build is None
    _without_waiting(store)
    day_ahead = time.time() + 86_400
    os.utime(store.root / "d", (day_ahead, day_ahead))  # an mtime in the future counts as racy too
    store.list_sorted("d")
    assert "d" not in store._lister.cache
    _settle(store.root / "d")
    store.list_sorted("d")
    assert "d" in store._lister.cache


def test_a_directory_changed_during_its_scan_is_not_snapshotted(tmp_path):
    store = _big(tmp_path)
    scan = store._lister._scan

    def changing(fd, rel):
        yield from scan(fd, rel)
        (store.root / "d" / "late").write_bytes(b"")

    store._lister._scan = changing
    assert len(store.list_sorted("d", None, 1000)) == 65
    assert "d" not in store._lister.cache
    store._lister._scan = scan
    assert "late" in [e.name for e in store.list_sorted("d", None, 1000)]


@pytest.mark.parametrize("snapshot", [False, True], ids=["scan", "snapshot"])
def test_entries_vanishing_while_a_page_is_made_are_skipped_and_the_page_refilled(tmp_path, snapshot):
    store = _big(tmp_path)
    if snapshot:
        store.list_sorted("d")
        assert "d" in store._lister.cache
    else:
        store.listing_snapshot_threshold = 10_000
    entry = store._lister._entry

    def vanishing(fd, rel, key):
        if key in ("f010", "f011", "f014"):
            os.unlink(store.root / "d" / key)
        return entry(fd, rel, key)

    store._lister._entry = vanishing
    got = store.list_sorted("d", "f009", 5)
    assert [e.name for e in got] == ["f012", "f013", "f015", "f016", "f017"]


def test_a_few_snapshots_per_store_least_recently_used_dropped(tmp_path):
    store = _big(tmp_path)
    store.listing_snapshots_kept = 2
    store._lister.cache.kept = 2
    for name in ("e1", "e2", "e3"):
        for i in range(25):
            (store.root / name).mkdir(exist_ok=True)
            (store.root / name / f"g{i}").write_bytes(b"")
        _settle(store.root / name)
    for name in ("e1", "e2", "e1", "e3"):
        store.list_sorted(name)
    cache = store._lister.cache
    assert len(cache) == 2 and "e1" in cache and "e3" in cache and "e2" not in cache
    assert len(os.listdir(cache.directory())) == 2


def test_a_pickled_store_starts_without_snapshots(tmp_path):
    store = _big(tmp_path)
    store.list_sorted("d")
    copy = pickle.loads(pickle.dumps(store))
    assert len(copy._lister.cache) == 0
    assert _pages(copy, "d", 9) == _pages(store, "d", 9)
