"""What every :class:`~airflow_hybrid.stores.base.Store` does, as one abstract test class (like fsspec's abstract
tests and rclone's ``fstests``).

A backend's test class subclasses :class:`StoreContract`, provides a ``store`` fixture (a store rooted at a fresh,
empty directory or prefix of its own) and declares, in class attributes, what its backend lacks: a test of a
missing feature then checks that the store really behaves as declared (e.g. an S3 read stream is not seekable),
it is never skipped silently. The optional features a store declares (:attr:`Store.features`) are checked
to be true, and those it does not declare to be absent or refused. Files are small (one of a few MiB where
parts and blocks matter) so the suite stays cheap enough to run against every backend.
"""

from __future__ import annotations

import errno
import hashlib
import io
import random
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from airflow_hybrid.stores.base import FileInfo, PathEscapeError, Store, StoreError, UnsupportedFeatureError

MiB = 1024 * 1024
#: Over S3's 5 MiB minimum part (two parts at part_size 5 MiB) and six 1 MiB HDFS blocks.
LARGE = 5 * MiB + 4099
#: 80 CJK characters, 240 bytes of UTF-8 (HDFS allows 255 bytes per name component).
CJK_80 = "数据湖" * 26 + "文件"
#: Spaces, ``%`` (also followed by hex digits, which must never be decoded), ``+`` and ``&``.
SPECIAL_NAMES = ("with space/a file.txt", "100%/50% done.csv", "escaped%41%2F%25/x%20y", "plus+sign & more")
ESCAPES = ("..", "../outside", "a/../../outside", "a/b/../c", "./../x")
DAY = 86_400


def pattern(size: int, seed: int = 1) -> bytes:
    """``size`` reproducible bytes that differ at every offset (so a misplaced range shows)."""
    return random.Random(seed).randbytes(size)


class Unseekable(io.RawIOBase):
    """A pipe-like input: short reads of at most ``max_read`` bytes, no seek or tell.

    :param on_read: called before every read with the number of bytes handed out so far.
    :param fail_after: raise :class:`OSError` once this many bytes were handed out.
    """

    def __init__(self, data: bytes, max_read: int = 64 * 1024, on_read: Callable[[int], None] | None = None,
                 fail_after: int | None = None) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._max_read = max_read
        self._on_read = on_read
        self._fail_after = fail_after
        self.sent = 0
        self.saw_eof = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        if self._on_read is not None:
            self._on_read(self.sent)
        if self._fail_after is not None and self.sent >= self._fail_after:
            raise OSError("the input stream broke")
        size = self._max_read if size is None or size < 0 else min(size, self._max_read)
        chunk = bytes(self._data[self.sent:self.sent + size])
        self.sent += len(chunk)
        self.saw_eof = self.saw_eof or not chunk
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def seek(self, *args) -> int:
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


def put(store: Store, path: str, data: bytes, **kwargs) -> FileInfo:
    return store.write(path, Unseekable(data), **kwargs)


def read(store: Store, path: str, offset: int = 0, length: int | None = None) -> bytes:
    """Everything ``open_read`` streams, read chunk by chunk until EOF."""
    with store.open_read(path, offset, length) as stream:
        return b"".join(iter(lambda: stream.read(256 * 1024), b""))


def names(entries: Iterator[FileInfo]) -> set[str]:
    return {entry.path for entry in entries}


class StoreContract:
    """The behaviour every store shares; subclasses provide the ``store`` fixture and declare what they lack."""

    #: Entries per listing page as the fixture configured the store or server (a fixture may set it from the
    #: server it runs against); ``None``: the store does not page.
    list_page_size: int | None = None
    #: Directories exist on their own (``mkdir`` creates one, an empty one is listed); ``False`` where they are
    #: implicit in keys (S3: ``mkdir`` does nothing, a directory exists while something is below it).
    supports_empty_dirs: ClassVar[bool] = True
    #: ``open_read(path)`` gives a seekable stream (``seek``/``tell``, ``SEEK_END``).
    supports_seek: ClassVar[bool] = True
    #: ``checksum`` returns the store's own checksum (otherwise ``None``, as ``Store.checksum`` does).
    supports_checksum: ClassVar[bool] = True
    #: ``write(..., if_absent=True)``: an exclusive create that never replaces an existing file.
    supports_if_absent: ClassVar[bool] = False
    #: A directory emptied by a delete disappears from its parent's listing at once. ``False`` for SeaweedFS,
    #: whose filer keeps the emptied folder (its empty-folder cleaner runs asynchronously, if at all) and whose delimited
    #: ``ListObjectsV2`` reports it as a common prefix meanwhile, while ``info`` finds nothing there.
    deleted_dirs_vanish: ClassVar[bool] = True

    # -- info ---------------------------------------------------------------------------------------
    def test_info_of_a_file(self, store: Store):
        written = put(store, "dir/file.bin", b"contract")
        assert (written.path, written.size, written.is_dir) == ("dir/file.bin", 8, False)
        info = store.info("dir/file.bin")
        assert (info.path, info.name, info.size, info.is_dir) == ("dir/file.bin", "file.bin", 8, False)
        assert abs(info.mtime - time.time()) < DAY  # seconds since the epoch (not milliseconds)
        assert store.exists("dir/file.bin")
        assert store.info("/dir//./file.bin").path == "dir/file.bin"  # a leading / is the store root

    def test_info_of_a_directory(self, store: Store):
        put(store, "parent/child/file", b"x")
        for path in ("parent", "parent/child", "/parent/child/"):
            info = store.info(path)
            assert info.is_dir and info.path == path.strip("/")
        root = store.info("")
        assert root.is_dir and root.path == ""

    def test_info_of_a_missing_path_raises_file_not_found(self, store: Store):
        put(store, "present", b"x")
        for path in ("absent", "absent/deeper", "presen", "present/below"):
            with pytest.raises(FileNotFoundError):
                store.info(path)
            assert not store.exists(path)

    # -- list ---------------------------------------------------------------------------------------
    def test_list_gives_the_direct_children(self, store: Store):
        for path in ("a", "bb", "sub/c", "sub/deeper/d"):
            put(store, path, path.encode())
        top = {entry.path: entry for entry in store.list("")}
        assert set(top) == {"a", "bb", "sub"}
        assert (top["a"].is_dir, top["a"].size, top["bb"].size, top["sub"].is_dir) == (False, 1, 2, True)
        assert {entry.path: entry.is_dir for entry in store.list("sub")} == {"sub/c": False, "sub/deeper": True}
        assert names(store.list("/sub/")) == {"sub/c", "sub/deeper"}

    def test_list_of_a_file_gives_that_file(self, store: Store):
        put(store, "dir/only", b"123")
        entries = list(store.list("dir/only"))
        assert [(entry.path, entry.size, entry.is_dir) for entry in entries] == [("dir/only", 3, False)]

    def test_list_of_a_missing_directory_raises_file_not_found(self, store: Store):
        put(store, "present", b"x")
        with pytest.raises(FileNotFoundError):
            list(store.list("absent"))

    def test_list_children_gives_the_children_and_nothing_for_a_missing_path_or_a_file(self, store: Store):
        for path in ("t/a", "t/sub/b", "other"):
            put(store, path, path.encode())
        assert {(e.path, e.is_dir) for e in store.list_children("t")} == {("t/a", False), ("t/sub", True)}
        assert list(store.list_children("absent")) == []
        assert list(store.list_children("t/a")) == []

    def test_list_pages_through_more_entries_than_a_page(self, store: Store):
        page = self.list_page_size or 3
        count = 2 * page + 1 if page <= 10 else page + 1  # three pages, or one past a server's large page
        expected = {}
        for number in range(count):
            path = f"many/entry-{number:05d}"
            if number < 3 or not self.supports_empty_dirs:
                put(store, path, b"f")
                expected[path] = False
            else:  # directories where they exist alone: one request each
                store.mkdir(path)
                expected[path] = True
        listing = store.list("many")
        assert iter(listing) is listing  # streamed, not a list
        entries = [(entry.path, entry.is_dir) for entry in listing]
        assert len(entries) == count  # each entry once, none lost between pages
        assert dict(entries) == expected

    # -- walk_files ---------------------------------------------------------------------------------
    def test_walk_files_streams_every_file_below(self, store: Store):
        tree = {"top": b"1", "a/one": b"22", "a/b/two": b"333", "a/b/c/three": b"4444", "z/empty": b""}
        for path, data in tree.items():
            put(store, path, data)
        if self.supports_empty_dirs:
            store.mkdir("a/nothing/inside")
        walk = store.walk_files("")
        assert iter(walk) is walk
        found = list(walk)
        assert {entry.path: entry.size for entry in found} == {path: len(data) for path, data in tree.items()}
        assert not any(entry.is_dir for entry in found)
        assert names(store.walk_files("a/b")) == {"a/b/two", "a/b/c/three"}
        with pytest.raises(FileNotFoundError):
            list(store.walk_files("absent"))

    # -- open_read ----------------------------------------------------------------------------------
    def test_open_read_of_a_whole_file(self, store: Store):
        data = pattern(100_000)
        put(store, "whole", data)
        with store.open_read("whole") as stream:
            assert stream.read() == data
        assert read(store, "whole") == data

    def test_open_read_of_ranges(self, store: Store):
        data = pattern(1000)
        put(store, "ranged", data)
        for offset, length in ((0, None), (10, None), (10, 20), (0, 1000), (999, 1), (990, 100), (500, 10_000)):
            end = None if length is None else offset + length
            assert read(store, "ranged", offset, length) == data[offset:end], (offset, length)

    def test_open_read_at_or_past_the_end_gives_nothing(self, store: Store):
        put(store, "short", pattern(1000))
        for offset, length in ((1000, None), (1000, 10), (1500, None)):
            assert read(store, "short", offset, length) == b"", (offset, length)

    def test_open_read_of_length_zero_gives_nothing(self, store: Store):
        put(store, "short", pattern(1000))
        for offset in (0, 500, 1000):
            assert read(store, "short", offset, 0) == b"", offset

    def test_open_read_of_an_empty_file(self, store: Store):
        info = put(store, "empty", b"")
        assert info.size == 0 and store.info("empty").size == 0
        assert read(store, "empty") == b""

    def test_open_read_of_a_missing_file_or_a_directory_raises(self, store: Store):
        put(store, "dir/file", b"x")
        with pytest.raises(FileNotFoundError):
            read(store, "absent")
        with pytest.raises((FileNotFoundError, IsADirectoryError)):
            read(store, "dir")

    def test_open_read_seek_and_tell(self, store: Store):
        data = pattern(1000)
        put(store, "seekable", data)
        with store.open_read("seekable") as stream:
            if not self.supports_seek:
                assert not stream.seekable()  # as declared
                return
            assert stream.seekable() and stream.tell() == 0
            assert stream.read(10) == data[:10] and stream.tell() == 10
            assert stream.seek(500) == 500 and stream.read(5) == data[500:505] and stream.tell() == 505
            assert stream.seek(-20, io.SEEK_CUR) == 485 and stream.read(15) == data[485:500]
            assert stream.seek(-10, io.SEEK_END) == 990 and stream.read() == data[990:]
            assert stream.seek(0, io.SEEK_END) == 1000 and stream.read() == b""
            assert stream.seek(0) == 0 and stream.read() == data

    # -- write --------------------------------------------------------------------------------------
    def test_write_streams_an_unseekable_input(self, store: Store):
        data = pattern(300_000)
        source = Unseekable(data)
        info = store.write("written/file", source)
        assert source.saw_eof  # read until EOF, in short reads
        assert (info.path, info.size, info.is_dir) == ("written/file", len(data), False)
        assert store.info("written/file").size == len(data)
        assert read(store, "written/file") == data

    def test_write_of_several_parts_or_blocks(self, store: Store):
        data = pattern(LARGE, seed=7)
        info = store.write("large", Unseekable(data, max_read=MiB))
        assert info.size == LARGE and store.info("large").size == LARGE
        assert hashlib.sha256(read(store, "large")).digest() == hashlib.sha256(data).digest()
        for offset in (MiB - 3, 4 * MiB - 3, 5 * MiB - 3, LARGE - 6):  # across part and block boundaries
            assert read(store, "large", offset, 6) == data[offset:offset + 6], offset

    def test_write_creates_missing_parents(self, store: Store):
        put(store, "x/y/z/file", b"deep")
        assert store.info("x/y").is_dir and store.info("x/y/z").is_dir
        assert read(store, "x/y/z/file") == b"deep"

    def test_write_to_the_root_is_refused(self, store: Store):
        with pytest.raises(IsADirectoryError):
            put(store, "", b"x")

    def test_overwrite_replaces_the_file_and_nothing_partial_is_visible(self, store: Store):
        old, new = b"old" * 1000, pattern(300_000)
        put(store, "target", old)
        seen = []

        def look(sent: int) -> None:  # while the new content is being read in
            if sent and not seen:
                seen.append((store.info("target").size, read(store, "target"), names(store.list(""))))

        info = store.write("target", Unseekable(new, on_read=look))
        assert seen == [(len(old), old, {"target"})]  # the old file, whole; no temporary name listed
        assert info.size == len(new) and store.info("target").size == len(new)
        assert read(store, "target") == new
        assert names(store.list("")) == {"target"}

    def test_a_new_file_is_invisible_until_complete(self, store: Store):
        put(store, "dir/other", b"o")
        seen = []

        def look(sent: int) -> None:
            if sent and not seen:
                seen.append((store.exists("dir/new"), names(store.list("dir")), names(store.walk_files(""))))

        store.write("dir/new", Unseekable(pattern(300_000), on_read=look))
        assert seen == [(False, {"dir/other"}, {"dir/other"})]
        assert names(store.list("dir")) == {"dir/other", "dir/new"}

    def test_a_failed_write_leaves_nothing_behind(self, store: Store):
        old = b"kept" * 100
        put(store, "kept", old)
        for target in ("kept", "fresh"):
            with pytest.raises((OSError, StoreError)):
                store.write(target, Unseekable(pattern(300_000), fail_after=100_000))
        assert read(store, "kept") == old
        assert not store.exists("fresh")
        assert names(store.list("")) == {"kept"}  # no temporary file left

    def test_exclusive_create_never_replaces(self, store: Store):
        assert store.features.exclusive_create is self.supports_if_absent  # the store declares what it does
        if not self.supports_if_absent:
            with pytest.raises(UnsupportedFeatureError, match="if_absent"):  # as declared
                put(store, "once", b"first", if_absent=True)
            assert not store.exists("once")
            return
        put(store, "once", b"first", if_absent=True)
        with pytest.raises(FileExistsError):
            put(store, "once", b"second", if_absent=True)
        assert read(store, "once") == b"first"

    def test_an_exclusive_create_of_several_parts_never_replaces(self, store: Store):
        if not store.features.exclusive_create:
            return  # refused, as test_exclusive_create_never_replaces checks
        put(store, "once", b"first", if_absent=True)
        with pytest.raises(FileExistsError):
            put(store, "once", pattern(LARGE), if_absent=True)
        assert read(store, "once") == b"first"
        size = store.features.exclusive_create_one_request_below
        assert store.features.cheap_exclusive_create(size - 1) and not store.features.cheap_exclusive_create(size)

    def test_declared_times(self, store: Store):
        put(store, "timed", b"x")
        if not store.features.set_times:
            assert not hasattr(store, "set_times")  # as declared
            return
        store.set_times("timed", mtime=1_600_000_000)
        assert abs(store.info("timed").mtime - 1_600_000_000) < 1

    def test_declared_multipart_uploads(self, store: Store):
        if not store.features.multipart_uploads:
            assert not hasattr(store, "list_open_uploads") and not hasattr(store, "abort_open_uploads")
            return
        put(store, "whole", pattern(LARGE))
        assert list(store.list_open_uploads("")) == []  # a completed write leaves none open
        assert store.abort_open_uploads("") == 0

    def test_declared_rename(self, store: Store):
        if store.features.atomic_rename:  # the protocol's fallback copies, then deletes: never atomic
            assert type(store).rename is not Store.rename

    def test_declared_checksum(self, store: Store):
        assert (store.features.server_checksum is not None) is self.supports_checksum
        if store.features.checksum_finds_missing_cheaply:
            with pytest.raises(FileNotFoundError):
                store.checksum("absent")

    # -- delete, mkdir, rename ----------------------------------------------------------------------
    def test_delete_a_file(self, store: Store):
        put(store, "doomed", b"x")
        put(store, "spared", b"y")
        assert store.delete("doomed") is True
        assert not store.exists("doomed") and store.exists("spared")
        assert store.delete("doomed") is False

    def test_delete_a_missing_path_returns_false(self, store: Store):
        put(store, "present", b"x")
        assert store.delete("absent") is False
        assert store.delete("absent/deeper", recursive=True) is False

    def test_delete_a_directory_recursively(self, store: Store):
        for path in ("tree/one", "tree/sub/two", "tree/sub/deeper/three", "kept/four"):
            put(store, path, b"x")
        assert store.delete("tree", recursive=True) is True
        assert not store.exists("tree") and not store.exists("tree/sub/two")
        assert store.exists("kept/four") and names(store.walk_files("")) == {"kept/four"}
        if self.deleted_dirs_vanish:
            assert names(store.list("")) == {"kept"}
        else:  # as declared: still listed, though it no longer exists
            assert names(store.list("")) == {"kept", "tree"}

    def test_delete_refuses_a_non_empty_directory_unless_recursive(self, store: Store):
        put(store, "full/file", b"x")
        with pytest.raises(OSError) as refused:
            store.delete("full")
        assert refused.value.errno == errno.ENOTEMPTY
        assert store.exists("full/file")

    def test_mkdir_creates_nested_directories(self, store: Store):
        store.mkdir("m/n/o")
        store.mkdir("m/n/o")  # again: a no-op
        if self.supports_empty_dirs:
            assert store.info("m/n/o").is_dir
            assert [(entry.path, entry.is_dir) for entry in store.list("m")] == [("m/n", True)]
            assert list(store.list("m/n/o")) == []
            assert store.delete("m/n/o") is True and not store.exists("m/n/o")
        else:  # as declared: nothing exists until a file is written below
            with pytest.raises(FileNotFoundError):
                store.info("m/n/o")
            put(store, "m/n/o/file", b"x")
            assert store.info("m/n").is_dir

    def test_rename_a_file(self, store: Store):
        put(store, "source", b"moving")
        store.rename("source", "moved/to/target")
        assert not store.exists("source")
        assert read(store, "moved/to/target") == b"moving"

    def test_rename_replaces_an_existing_target(self, store: Store):
        put(store, "a", b"from a")
        put(store, "b", b"old b")
        store.rename("a", "b")
        assert not store.exists("a") and read(store, "b") == b"from a"

    def test_rename_a_directory(self, store: Store):
        for path in ("old/one", "old/sub/two"):
            put(store, path, path.encode())
        store.rename("old", "new")
        assert not store.exists("old")
        assert names(store.walk_files("new")) == {"new/one", "new/sub/two"}
        assert read(store, "new/sub/two") == b"old/sub/two"

    def test_rename_of_a_missing_source_raises_file_not_found(self, store: Store):
        put(store, "present", b"x")
        with pytest.raises(FileNotFoundError):
            store.rename("absent", "elsewhere")
        assert not store.exists("elsewhere")

    # -- checksum, uri ------------------------------------------------------------------------------
    def test_checksum_follows_the_content(self, store: Store):
        data = pattern(100_000)
        changed = data[:50_000] + bytes([data[50_000] ^ 1]) + data[50_001:]
        put(store, "one", data)
        put(store, "same", data)
        put(store, "changed", changed)
        if not self.supports_checksum:
            assert store.checksum("one") is None  # as declared
            return
        one, same, other = store.checksum("one"), store.checksum("same"), store.checksum("changed")
        assert one is not None and one.algorithm and one.value
        assert one == same and one != other
        put(store, "one", changed)  # overwritten: the checksum follows
        assert store.checksum("one") == other
        with pytest.raises(FileNotFoundError):
            store.checksum("absent")

    def test_uri(self, store: Store):
        root = store.uri("")
        assert root == store.root_uri and root.startswith(f"{store.scheme}://")
        assert store.uri("a/b.txt") == f"{root}/a/b.txt"
        assert store.uri("/a//./b.txt") == f"{root}/a/b.txt"

    # -- names --------------------------------------------------------------------------------------
    def test_paths_never_escape_the_root(self, store: Store):
        put(store, "inside", b"x")
        calls = {
            "info": store.info,
            "exists": store.exists,
            "list": lambda path: list(store.list(path)),
            "walk_files": lambda path: list(store.walk_files(path)),
            "open_read": lambda path: store.open_read(path).close(),
            "write": lambda path: put(store, path, b"escaped"),
            "mkdir": store.mkdir,
            "rename from": lambda path: store.rename(path, "inside-renamed"),
            "rename to": lambda path: store.rename("inside", path),
            "checksum": store.checksum,
            "uri": store.uri,
            "delete": lambda path: store.delete(path, recursive=True),  # last: the most harmful if it escaped
        }
        for path in ESCAPES:
            for name, call in calls.items():
                with pytest.raises(PathEscapeError):
                    call(path)
                    pytest.fail(f"{name}({path!r}) did not raise PathEscapeError")
        assert names(store.list("")) == {"inside"} and read(store, "inside") == b"x"

    def _round_trip(self, store: Store, path: str) -> None:
        """Write, stat, list, walk, read, rename and delete ``path``; the name comes back unchanged."""
        data = path.encode()
        parent, _, name = path.rpartition("/")
        assert put(store, path, data).path == path
        assert store.info(path).path == path and store.info(path).name == name
        assert path in names(store.list(parent))
        assert path in names(store.walk_files(""))
        assert read(store, path) == data
        store.rename(path, f"{path} renamed")
        assert read(store, f"{path} renamed") == data and not store.exists(path)
        path = f"{path} renamed"
        assert store.delete(path) is True and not store.exists(path)

    def test_unicode_names(self, store: Store):
        for path in ("données/été-ß.txt", "表/数据 文件.csv", "emoji/🚀-launch"):
            self._round_trip(store, path)

    def test_an_80_character_cjk_name(self, store: Store):
        assert len(CJK_80) == 80 and len(CJK_80.encode()) == 240
        self._round_trip(store, f"cjk/{CJK_80}")

    def test_names_with_spaces_and_percent_signs(self, store: Store):
        for path in SPECIAL_NAMES:
            self._round_trip(store, path)
