"""Consistent reads while data moves (DESIGN.md section 3), under every interleaving of a move with a mount's
member requests, over two local-directory members ``s3`` and ``hdfs``.

A file moves as a migration moves it: copied whole to the destination member, then removed from the source.
For each operation (listings, lookups, reads; through the mount, ``hybrid://``, the glob engine, the cache,
the listing catalog and the resolver), both read priorities and both directions, the copy and the removal are
placed before every pair of the operation's member requests (:mod:`tests.interleaving`). The moving file must
be listed exactly once, found, and read with its own bytes every time. The same harness with the mount's
old request orders (one pass in read priority; no second look; no following of a read) finds the losses, so
these tests can fail.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from airflow_hybrid.cache import ops as cache_ops
from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import union as mount_module
from airflow_hybrid.mount.globs import parse_patterns
from airflow_hybrid.mount.options import parse_mount_options
from airflow_hybrid.mount.resolver import SplitLocationError, resolve_locations
from airflow_hybrid.mount.union import FileChangedError, HybridMount
from airflow_hybrid.stores.local import LocalStore
from tests.interleaving import (
    DATA,
    LISTINGS,
    LOOKUPS,
    MOVING,
    READS,
    STATIC,
    World,
    check_every_interleaving,
    failures_under_interleavings,
    found,
    listed_once,
    read_chunks,
    same_bytes,
)

#: Bytes per read request of a member (and read size of the tests' readers): the moving file takes ten.
CHUNK = 1000

def local_world(root, priority: str, direction: tuple[str, str], cache: dict | None = None) -> World:
    """Members ``s3`` and ``hdfs`` as local directories under ``root``."""
    options: dict[str, Any] = {
        "members": {name: {"uri": f"file://{root / name}"} for name in ("s3", "hdfs")},
        "priority.read": priority,
        "collection.create": "s3",
    }
    if cache is not None:
        options["cache"] = {
            "tiers": [{"alias": "SSD", "uri": f"file://{root}/tier", "quota": "64MB"}],
            "catalog_url": f"sqlite:///{root}/catalog.db",
            **cache,
        }
    inner = {name: LocalStore(str(root / name)) for name in ("s3", "hdfs")}
    return World(inner, parse_mount_options("lake", options), direction, chunk=CHUNK)


@pytest.fixture
def world(tmp_path, priority, direction):
    made = local_world(tmp_path, priority, direction)
    yield made
    made.close()


@pytest.mark.parametrize("op", sorted(LISTINGS))
def test_a_moving_file_is_listed_exactly_once(world, op):
    runs = check_every_interleaving(world, LISTINGS[op], listed_once)
    assert runs >= 10


@pytest.mark.parametrize("op", sorted(LOOKUPS))
def test_a_moving_file_is_always_found(world, op):
    check_every_interleaving(world, LOOKUPS[op], found)


@pytest.mark.parametrize("op", sorted(READS))
def test_a_moving_file_is_read_with_its_own_bytes(world, op):
    runs = check_every_interleaving(world, READS[op], same_bytes)
    assert runs >= 66  # the move's steps placed among at least ten reads


def test_a_split_directory_counts_a_moving_file_once(world):
    """The resolver's locations of ``d`` hold every file once, or refuse (a file seen in two members)."""

    def op(w: World) -> Any:
        try:
            return sum(loc.files for loc in resolve_locations(w.mount, "d"))
        except SplitLocationError as err:
            return err

    def check(result: Any) -> str | None:
        if isinstance(result, SplitLocationError):
            return None if MOVING in str(result) else f"refused for another file: {result}"
        return None if result == len(STATIC) + 1 else f"{result} files located, expected {len(STATIC) + 1}"

    check_every_interleaving(world, op, check)


# -- through the cache --------------------------------------------------------------------------------------
@pytest.fixture
def cached_world(tmp_path, priority, direction):
    made = local_world(tmp_path, priority, direction, cache={"metadata_sync_interval": 0})
    yield made
    made.close()


def test_a_read_through_the_cache_keeps_its_bytes_and_fills_a_true_copy(cached_world):
    """``open_read`` through the cache (the fill tees the source): the reader and the copy get the file."""

    def op(w: World) -> tuple[bytes, bytes | None]:
        data = read_chunks(w.mount.open_read(MOVING), CHUNK)
        w.schedule.enabled = False
        entry = w.mount.cache.catalog.get("lake", MOVING)
        copy = None
        if entry is not None and entry.state == "ready":
            with w.mount.cache.open_cached(entry) as stream:
                copy = stream.read()
        return data, copy

    def check(result) -> str | None:
        data, copy = result
        return same_bytes(data) or (None if copy in (None, DATA) else f"the cached copy has {len(copy)} wrong bytes")

    check_every_interleaving(cached_world, op, check)


@pytest.mark.parametrize("op", ["mount.info", "fs.info", "mount.exists"])
def test_a_lookup_through_the_cache_finds_a_moving_file(cached_world, op):
    check_every_interleaving(cached_world, LOOKUPS[op], found)


def test_a_prefetch_of_a_moving_file_loads_its_bytes(cached_world):
    def op(w: World):
        summary = cache_ops.prefetch(w.mount, [MOVING])
        w.schedule.enabled = False
        entry = w.mount.cache.catalog.get("lake", MOVING)
        with w.mount.cache.open_cached(entry) as stream:
            return summary.loaded, stream.read()

    check_every_interleaving(cached_world, op, lambda r: same_bytes(r[1]) or found(r[0]))


@pytest.fixture
def catalog_world(tmp_path, priority, direction):
    made = local_world(tmp_path, priority, direction, cache={"metadata_sync_interval": 60, "listing_sync_interval": 3600})
    yield made
    made.close()


def test_a_listing_stored_in_the_catalog_during_a_move_misses_nothing(catalog_world):
    """``listing_sync_interval``: the listing filled while the file moves, and the one later answered from the
    catalog (another filesystem, no member asked), both list it once."""

    def op(w: World) -> tuple[list[str], list[str], int]:
        filled = [e["name"].removeprefix("lake/") for e in w.fs().ls("hybrid://lake/d")]
        w.schedule.enabled = False
        before = w.schedule.requests
        w.schedule.enabled = True
        stored = [e["name"].removeprefix("lake/") for e in w.fs().ls("hybrid://lake/d")]
        return filled, stored, w.schedule.requests - before

    def check(result) -> str | None:
        filled, stored, asked = result
        for names in (filled, stored):
            problem = listed_once([n for n in names if n != "d/sub"] + ["d/sub/x.bin"])
            if problem:
                return problem
        return None if asked == 0 else f"the stored listing was not used ({asked} member requests)"

    check_every_interleaving(catalog_world, op, check)


def test_the_stored_listing_is_forgotten_when_the_mount_writes(catalog_world):
    w = catalog_world
    w.reset()
    fs = w.fs()
    assert "lake/d/new.bin" not in fs.ls("hybrid://lake/d", detail=False)
    w.mount.write("d/new.bin", io.BytesIO(b"n"))
    assert "lake/d/new.bin" in w.fs().ls("hybrid://lake/d", detail=False)
    w.mount.delete("d/new.bin")
    assert "lake/d/new.bin" not in w.fs().ls("hybrid://lake/d", detail=False)


# -- the old request orders lose the file (the harness can fail) ---------------------------------------------
TOWARD_PRIORITY = [("s3,hdfs", ("hdfs", "s3")), ("hdfs,s3", ("s3", "hdfs"))]


@pytest.mark.parametrize(("priority", "direction"), TOWARD_PRIORITY, ids=["hdfs->s3", "s3->hdfs"])
def test_one_listing_pass_in_read_order_misses_a_file_moving_to_the_first_member(world, monkeypatch):
    monkeypatch.setattr(HybridMount, "listing_sequence", lambda self: list(self.read_order))
    runs, failures = failures_under_interleavings(world, LISTINGS["mount.ls"], listed_once)
    assert failures and all("listed 0 times" in f for f in failures), failures


@pytest.mark.parametrize(("priority", "direction"), TOWARD_PRIORITY, ids=["hdfs->s3", "s3->hdfs"])
def test_a_lookup_without_the_second_look_misses_a_file_moving_to_the_first_member(world, monkeypatch):
    monkeypatch.setattr(HybridMount, "lookup_sequence", lambda self: list(self.read_order))
    runs, failures = failures_under_interleavings(world, LOOKUPS["mount.resolve"], found)
    assert failures and all("FileNotFoundError" in f for f in failures), failures


def test_a_read_that_does_not_follow_the_file_breaks_mid_stream(world, monkeypatch):
    monkeypatch.setattr(mount_module._FollowingReader, "_lost", lambda self, error: False)
    runs, failures = failures_under_interleavings(world, READS["mount.open_read"], same_bytes)
    assert failures and all("FileNotFoundError" in f for f in failures), failures


# -- a read never mixes two files ---------------------------------------------------------------------------
def test_a_read_does_not_continue_from_a_copy_of_another_size(world):
    w = world
    w.reset()
    src, dst = w.move.src, w.move.dst
    stream = w.mount.open_read(MOVING)
    assert stream.read(CHUNK) == DATA[:CHUNK]
    dst.write(MOVING, io.BytesIO(DATA + b"more"))
    src.delete(MOVING)
    with pytest.raises(FileChangedError, match=r"\(10004 bytes, was 10000\); read it again"):
        read_chunks(stream, CHUNK)


def test_a_read_does_not_continue_from_a_copy_with_other_bytes(world):
    w = world
    w.reset()
    src, dst = w.move.src, w.move.dst
    stream = w.mount.open_read(MOVING)
    assert stream.read(CHUNK) + stream.read(CHUNK) == DATA[: 2 * CHUNK]
    other = bytearray(DATA)
    other[CHUNK + 10] ^= 0xFF  # the same size, one byte differs inside what was already read
    dst.write(MOVING, io.BytesIO(bytes(other)))
    src.delete(MOVING)
    with pytest.raises(FileChangedError, match="has other bytes before that offset"):
        read_chunks(stream, CHUNK)


def test_a_read_of_a_file_removed_from_every_member_says_so(world):
    w = world
    w.reset()
    stream = w.mount.open_read(MOVING)
    assert stream.read(CHUNK) == DATA[:CHUNK]
    w.move.src.delete(MOVING)
    with pytest.raises(FileNotFoundError, match="while read at offset 1000 .* and no member has it now"):
        read_chunks(stream, CHUNK)


def test_a_directory_missing_from_every_member_is_not_found(world):
    with pytest.raises(FileNotFoundError, match="not found in any member"):
        list(world.mount.ls("absent"))


# -- globs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "column"), [("part-[2-0].bin", 6), ("d/[z-a]*/x", 3), ("a/b[]c-a]", 4)]
)
def test_a_glob_with_a_bad_character_range_names_the_pattern_and_column(pattern, column):
    expected = re.escape(f"glob {pattern!r}") + rf".* at column {column} \(bad character range"
    with pytest.raises(HybridConfigError, match=expected):
        parse_patterns(pattern)
