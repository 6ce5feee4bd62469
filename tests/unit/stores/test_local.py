"""LocalStore, the reference store: a directory on this machine."""

from __future__ import annotations

import io
import os

import pytest

from airflow_hybrid.stores.base import PathEscapeError, join_path, normalize_path
from airflow_hybrid.stores.local import LocalStore


@pytest.fixture
def store(tmp_path):
    return LocalStore(str(tmp_path / "root"))


def write(store: LocalStore, path: str, data: bytes = b"data") -> None:
    store.write(path, io.BytesIO(data))


def test_root_uri_forms(tmp_path):
    assert LocalStore(f"file://{tmp_path}").root == tmp_path.resolve()
    assert LocalStore(str(tmp_path)).uri("a/b") == f"file://{tmp_path.resolve()}/a/b"
    with pytest.raises(ValueError, match="needs a directory"):
        LocalStore("file://")


def test_write_creates_parents_and_info_describes_it(store):
    info = store.write("a/b/c.bin", io.BytesIO(b"12345"))
    assert (info.path, info.size, info.is_dir) == ("a/b/c.bin", 5, False)
    assert (store.root / "a/b/c.bin").read_bytes() == b"12345"
    assert store.info("a").is_dir and store.info("").is_dir
    assert store.info("/a/b/c.bin").fingerprint() == info.fingerprint()  # a leading slash: the store root
    with pytest.raises(FileNotFoundError, match="does not exist"):
        store.info("a/missing")


def test_write_replaces_and_an_interrupted_write_leaves_nothing(store):
    write(store, "f.bin", b"old")

    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 1:
                raise OSError("disk vanished")
            return b"partial"

    with pytest.raises(OSError, match="disk vanished"):
        store.write("f.bin", Broken())
    assert (store.root / "f.bin").read_bytes() == b"old"  # the old content survives intact
    assert os.listdir(store.root) == ["f.bin"]  # no temporary file left behind
    write(store, "f.bin", b"new content")
    assert store.open_read("f.bin").read() == b"new content"


def test_list_and_walk(store):
    for path in ("top.txt", "d/one.txt", "d/e/two.txt", "d/e/f/three.txt"):
        write(store, path)
    store.mkdir("empty/dir")
    assert {(e.path, e.is_dir) for e in store.list("")} == {("top.txt", False), ("d", True), ("empty", True)}
    assert {(e.path, e.is_dir) for e in store.list("d")} == {("d/one.txt", False), ("d/e", True)}
    assert sorted(e.path for e in store.walk_files("d")) == ["d/e/f/three.txt", "d/e/two.txt", "d/one.txt"]
    assert [e.path for e in store.list("top.txt")] == ["top.txt"]
    assert list(store.walk_files("empty")) == []
    with pytest.raises(FileNotFoundError):
        list(store.list("nope"))


def test_temporary_files_are_hidden_from_listings(store):
    write(store, "d/real.txt")
    (store.root / "d" / ".hybrid-tmp-abc").write_bytes(b"in progress")
    assert [e.path for e in store.list("d")] == ["d/real.txt"]


def test_ranged_reads(store):
    data = bytes(range(256)) * 40
    write(store, "r.bin", data)
    with store.open_read("r.bin", offset=100, length=50) as stream:
        assert stream.read(20) + stream.read() == data[100:150]
    with store.open_read("r.bin", offset=10_000) as stream:
        assert stream.read() == data[10_000:]
    with store.open_read("r.bin", offset=20_000, length=5) as stream:
        assert stream.read() == b""
    with pytest.raises(FileNotFoundError):
        store.open_read("missing.bin")
    with pytest.raises(FileNotFoundError, match="not a file"):
        store.open_read("")


def test_delete(store):
    write(store, "d/a.txt")
    write(store, "d/sub/b.txt")
    write(store, "f.txt")
    assert store.delete("f.txt") and not store.exists("f.txt")
    assert store.delete("f.txt") is False
    with pytest.raises(OSError):
        store.delete("d")  # not empty
    assert store.delete("d", recursive=True) and not store.exists("d")


def test_rename(store):
    write(store, "a/x.txt", b"x")
    store.rename("a/x.txt", "b/c/y.txt")
    assert store.open_read("b/c/y.txt").read() == b"x" and not store.exists("a/x.txt")
    store.rename("b", "z")
    assert [e.path for e in store.walk_files("z")] == ["z/c/y.txt"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        store.rename("b", "q")


@pytest.mark.parametrize("path", ["..", "../outside.txt", "a/../../outside.txt", "a/b/../../../x", "..\\x"])
def test_path_escapes_are_rejected_everywhere(store, tmp_path, path):
    write(store, "a/b/inside.txt")
    (tmp_path / "outside.txt").write_bytes(b"secret")
    with pytest.raises(PathEscapeError, match="escapes its root"):
        store.info(path)
    with pytest.raises(PathEscapeError):
        store.open_read(path)
    with pytest.raises(PathEscapeError):
        store.write(path, io.BytesIO(b"overwrite"))
    with pytest.raises(PathEscapeError):
        store.delete(path, recursive=True)
    with pytest.raises(PathEscapeError):
        store.rename("a/b/inside.txt", path)
    with pytest.raises(PathEscapeError):
        list(store.list(path))
    assert (tmp_path / "outside.txt").read_bytes() == b"secret"
    assert store.exists("a/b/inside.txt")


def test_absolute_paths_stay_inside_the_root(store, tmp_path):
    write(store, "/etc/passwd", b"not the host's")
    assert (store.root / "etc/passwd").read_bytes() == b"not the host's"
    assert store.info("/etc/passwd").path == "etc/passwd"


def test_normalize_path_rules():
    assert normalize_path("/a//b/./c/") == "a/b/c"
    assert normalize_path("") == "" and normalize_path("/") == ""
    assert join_path("a", "", "b/c") == "a/b/c"
    with pytest.raises(PathEscapeError, match="NUL"):
        normalize_path("a\x00b")
    with pytest.raises(PathEscapeError):
        normalize_path(None)


def test_written_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    import io
    import os

    from airflow_hybrid.stores.local import LocalStore

    umask = os.umask(0o022)
    os.umask(umask)
    store = LocalStore(str(tmp_path))
    store.write("a/b.bin", io.BytesIO(b"x"))
    assert (tmp_path / "a" / "b.bin").stat().st_mode & 0o777 == 0o666 & ~umask
