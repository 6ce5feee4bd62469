"""Containment of local members and cache tiers: no path resolves outside the root, symbolic links included;
cached copies (and their temporary files) are private.

Every test plants links under a store's root pointing outside it (and inside it: links are never followed,
wherever they point), then checks each operation refuses with ``PathEscapeError`` naming the path and that
the outside directory is byte for byte, name for name and mtime for mtime as it was. The races are played
deterministically: a stream the store is writing from plants the link or swaps a directory while the write
is in progress (after the store's own checks).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.exceptions import CacheConfigError
from airflow_hybrid.cache.tier import copy_location
from airflow_hybrid.stores.base import PathEscapeError
from airflow_hybrid.stores.local import LocalStore
from tests.doubles import MemberSource

SECRET = b"outside the root: never read, never written"


def snapshot(directory: Path) -> dict[str, tuple[bytes | None, int, float]]:
    """Every entry below ``directory``: content (files), mode and mtime; links are not followed."""
    found = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(path.relative_to(directory))] = (data, st.st_mode, st.st_mtime)
    return found


@pytest.fixture
def outside(tmp_path) -> Path:
    directory = tmp_path / "outside"
    (directory / "sub").mkdir(parents=True)
    (directory / "secret.txt").write_bytes(SECRET)
    (directory / "sub" / "deep.txt").write_bytes(SECRET)
    return directory


@pytest.fixture
def store(tmp_path, outside) -> LocalStore:
    """A store whose root holds real data and links: out-dir, out-file, dangling, in-dir, in-file, loop."""
    store = LocalStore(str(tmp_path / "root"))
    store.write("real/inside.txt", io.BytesIO(b"inside"))
    root = store.root
    (root / "out-dir").symlink_to(outside)
    (root / "out-file").symlink_to(outside / "secret.txt")
    (root / "dangling").symlink_to(outside / "not-yet-there.txt")
    (root / "in-dir").symlink_to(root / "real")
    (root / "in-file").symlink_to(root / "real" / "inside.txt")
    (root / "real" / "loop").symlink_to(root / "real" / "loop")
    (root / "real" / "up").symlink_to("..")
    return store


LINKS = ["out-dir", "out-file", "dangling", "in-dir", "in-file", "real/loop", "real/up"]
#: Paths that are links or go through one.
THROUGH = [
    *LINKS,
    "out-dir/secret.txt",
    "out-dir/sub/deep.txt",
    "out-dir/sub",
    "in-dir/inside.txt",
    "real/up/real/inside.txt",
    "out-dir/new/file.txt",
    "dangling/x",
]


def operations(store: LocalStore) -> dict:
    return {
        "info": store.info,
        "exists": store.exists,
        "list": lambda p: list(store.list(p)),
        "walk_files": lambda p: list(store.walk_files(p)),
        "open_read": lambda p: store.open_read(p).close(),
        "ranged open_read": lambda p: store.open_read(p, offset=1, length=3).close(),
        "write": lambda p: store.write(p, io.BytesIO(b"written through a link")),
        "mkdir": store.mkdir,
        "delete": store.delete,
        "delete recursive": lambda p: store.delete(p, recursive=True),
        "rename from": lambda p: store.rename(p, "real/renamed"),
        "rename to": lambda p: store.rename("real/inside.txt", p),
        "set_times": lambda p: store.set_times(p, mtime=1.0),
    }


@pytest.mark.parametrize("path", THROUGH)
def test_every_operation_refuses_a_path_through_a_link(store, outside, path):
    before = snapshot(outside)
    links_before = {name: os.readlink(store.root / name) for name in LINKS}
    for name, call in operations(store).items():
        with pytest.raises(PathEscapeError, match="symbolic link") as refused:
            call(path)
            pytest.fail(f"{name}({path!r}) did not refuse")
        assert store.uri(path) in str(refused.value), f"{name}({path!r}): {refused.value}"
    assert snapshot(outside) == before
    assert {name: os.readlink(store.root / name) for name in LINKS} == links_before  # no link touched
    assert store.open_read("real/inside.txt").read() == b"inside"
    assert not (outside / "not-yet-there.txt").exists() and not (outside / "new").exists()


def test_listings_leave_links_out_and_never_enter_them(store, outside, caplog):
    assert {(e.path, e.is_dir) for e in store.list("")} == {("real", True)}
    assert {e.path for e in store.list("real")} == {"real/inside.txt"}
    assert [e.path for e in store.walk_files("")] == ["real/inside.txt"]
    assert "out-dir is a symbolic link; left out of the listing" in caplog.text


def test_a_link_replacing_the_root_is_refused(tmp_path, outside):
    store = LocalStore(str(tmp_path / "root"))
    store.mkdir("")
    os.rmdir(store.root)
    store.root.symlink_to(outside)  # the root swapped for a link after the store was built
    for name, call in operations(store).items():
        with pytest.raises(PathEscapeError):
            call("secret.txt")
            pytest.fail(f"{name} followed a link at the root")
    with pytest.raises(PathEscapeError):
        store.info("")
    assert (outside / "secret.txt").read_bytes() == SECRET


def test_a_root_under_a_linked_ancestor_works(tmp_path):
    (tmp_path / "real-parent").mkdir()
    (tmp_path / "parent-link").symlink_to(tmp_path / "real-parent")  # e.g. /tmp -> /private/tmp
    store = LocalStore(str(tmp_path / "parent-link" / "root"))
    store.write("a/b.txt", io.BytesIO(b"ok"))
    assert store.root == tmp_path / "real-parent" / "root"
    assert store.open_read("a/b.txt").read() == b"ok"


def test_other_special_files_are_not_opened(store):
    os.mkfifo(store.root / "real" / "fifo")  # opening it for reading must neither hang nor serve it
    with pytest.raises(FileNotFoundError, match="not a file"):
        store.open_read("real/fifo")


class Planting(io.RawIOBase):
    """A source stream that runs ``plant`` once, after its first chunk (the store has done its checks)."""

    def __init__(self, data: bytes, plant) -> None:
        self._data, self._plant, self._sent = data, plant, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._sent:
            if self._plant is not None:
                self._plant()
                self._plant = None
            return 0
        self._sent = True
        buffer[: len(self._data)] = self._data
        return len(self._data)


def test_a_link_planted_at_the_target_during_a_write_is_replaced_not_written_through(store, outside):
    before = snapshot(outside)
    target = store.root / "real" / "target.txt"
    store.write("real/target.txt", Planting(b"new bytes", lambda: target.symlink_to(outside / "secret.txt")))
    assert not target.is_symlink() and target.read_bytes() == b"new bytes"
    assert snapshot(outside) == before


def test_a_directory_swapped_for_a_link_during_a_write_keeps_the_write_inside(store, outside):
    before = snapshot(outside)
    real = store.root / "real"

    def swap() -> None:
        real.rename(store.root / "moved")
        real.symlink_to(outside)

    store.write("real/new.txt", Planting(b"stays inside", swap))
    assert (store.root / "moved" / "new.txt").read_bytes() == b"stays inside"  # where the write began
    assert snapshot(outside) == before
    with pytest.raises(PathEscapeError):
        store.open_read("real/new.txt")


def test_a_link_planted_as_a_temporary_name_is_never_opened(store, outside, monkeypatch):
    """The temporary file is created O_EXCL: a link already at the chosen name is skipped, not followed."""
    from airflow_hybrid.stores import local

    names = iter(["planted", "planted", "fresh"])
    monkeypatch.setattr(local.secrets, "token_hex", lambda n: next(names))
    (store.root / "real" / ".hybrid-tmp-planted").symlink_to(outside / "secret.txt")
    before = snapshot(outside)
    store.write("real/f.txt", io.BytesIO(b"mine"))
    assert (store.root / "real" / "f.txt").read_bytes() == b"mine"
    assert snapshot(outside) == before


def test_recursive_delete_removes_links_inside_without_following_them(store, outside):
    before = snapshot(outside)
    (store.root / "real" / "nested").mkdir()
    (store.root / "real" / "nested" / "to-outside").symlink_to(outside)
    assert store.delete("real", recursive=True) is True
    assert not (store.root / "real").exists()
    assert snapshot(outside) == before


def test_members_keep_the_usual_modes(tmp_path):
    umask = os.umask(0o022)
    try:
        store = LocalStore(str(tmp_path / "member"))
        store.write("d/f.bin", io.BytesIO(b"x"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "member" / "d" / "f.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "member" / "d").stat().st_mode) == 0o755


# -- cache tiers --------------------------------------------------------------------------------------
def shm_or_tmp(tmp_path: Path) -> Path:
    """A directory on /dev/shm (the MEM tier's usual place) when the host has one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        return Path(tempfile.mkdtemp(prefix="hybrid-containment-", dir=shm))
    return tmp_path / "shm"


@pytest.fixture
def mem_dir(tmp_path):
    directory = shm_or_tmp(tmp_path)
    yield directory
    import shutil

    shutil.rmtree(directory, ignore_errors=True)




def manager_for(tmp_path, mem_dir, source_store=None, **cache) -> CacheManager:
    tiers = [{"alias": "MEM", "uri": f"file://{mem_dir}/tier", "quota": "1MiB"}]
    config = CacheConfig.from_options(
        {"cache": {"tiers": tiers, "catalog_url": f"sqlite:///{tmp_path}/catalog.db", **cache}}, "lake"
    )
    source = MemberSource(source_store) if source_store is not None else None
    return CacheManager("lake", config, catalog=Catalog(config.catalog_url), source=source)


@pytest.fixture
def source_store(tmp_path) -> LocalStore:
    store = LocalStore(str(tmp_path / "src"))
    for name in ("t/a.bin", "t/b.bin", "t/c.bin"):
        store.write(name, io.BytesIO(name.encode() * 100))
    return store


def modes_below(root: Path) -> tuple[set[int], set[int]]:
    files = {stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*") if p.is_file()}
    dirs = {stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")] if p.is_dir()}
    return files, dirs


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_cached_copies_are_0600_in_0700_directories(tmp_path, mem_dir, source_store, umask):
    old = os.umask(umask)
    try:
        manager = manager_for(tmp_path, mem_dir, source_store)
        info = source_store.info("t/a.bin")
        assert (
            manager.load("t/a.bin", "hdfs", info, lambda: source_store.open_read("t/a.bin")).status
            == "loaded"
        )
        with manager.open("t/b.bin") as stream:  # read-through fill
            assert stream.read() == b"t/b.bin" * 100
        manager.close()
    finally:
        os.umask(old)
    files, dirs = modes_below(mem_dir / "tier")
    assert len(list((mem_dir / "tier").rglob("*.bin"))) == 2
    assert files == {0o600} and dirs == {0o700}


def test_temporary_files_of_a_fill_are_0600_from_birth(tmp_path, mem_dir, source_store):
    manager = manager_for(tmp_path, mem_dir)
    seen: list[int] = []
    tier_root = mem_dir / "tier"

    def look() -> None:
        seen.extend(stat.S_IMODE(p.lstat().st_mode) for p in tier_root.rglob(".hybrid-tmp-*"))

    info = source_store.info("t/c.bin")
    data = source_store.open_read("t/c.bin").read()
    manager.load("t/c.bin", "hdfs", info, lambda: Planting(data, look))
    manager.close()
    assert seen == [0o600]  # the in-progress copy, as it was being written


def test_the_cache_file_mode_is_configurable(tmp_path, mem_dir, source_store):
    manager = manager_for(tmp_path, mem_dir, source_store, file_mode="0640")
    info = source_store.info("t/a.bin")
    manager.load("t/a.bin", "hdfs", info, lambda: source_store.open_read("t/a.bin"))
    manager.close()
    assert modes_below(mem_dir / "tier") == ({0o640}, {0o750})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0600", 0o600), ("640", 0o640), ("0o644", 0o644), (0o600, 0o600), (" 0600 ", 0o600)],
)
def test_file_mode_values(value, expected):
    config = CacheConfig.from_options(
        {"cache": {"tiers": [{"alias": "M", "uri": "/x", "quota": 1}], "file_mode": value}}, "m"
    )
    assert config.file_mode == expected and config.tiers[0].file_mode == expected


def test_file_mode_defaults_to_0600():
    config = CacheConfig.from_options({"cache": {"tiers": [{"alias": "M", "uri": "/x", "quota": 1}]}}, "m")
    assert config.file_mode == 0o600 and config.tiers[0].file_mode == 0o600


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0666", "lets others change"),
        ("0620", "lets others change"),
        ("0400", "owner read and write"),
        ("4600", "between 0000 and 0777"),
        (600, "between 0000 and 0777"),  # decimal 600 is not 0600
        ("rw-------", "expected an octal file mode"),
        ("0800", "expected an octal file mode"),
        (True, "expected an octal file mode"),
        (None, "expected an octal file mode"),
        (6.0, "expected an octal file mode"),
    ],
)
def test_bad_file_modes_are_errors_naming_the_option(value, message):
    with pytest.raises(CacheConfigError, match=f"cache.file_mode: .*{message}"):
        CacheConfig.from_options(
            {"cache": {"tiers": [{"alias": "M", "uri": "/x", "quota": 1}], "file_mode": value}}, "m"
        )


def test_a_prefetch_never_writes_through_a_link_planted_in_the_tier(tmp_path, mem_dir, source_store, outside):
    """Links at each predictable level of a copy's location (mount, hash prefix): the load fails, naming the
    link; nothing lands outside; the source file is still read correctly (read-through)."""
    manager = manager_for(tmp_path, mem_dir, source_store)
    tier_root = mem_dir / "tier"
    tier_root.mkdir(parents=True, exist_ok=True)
    location = copy_location("lake", "t/a.bin", "x")
    mount_dir, prefix = location.split("/")[:2]
    before = snapshot(outside)
    info = source_store.info("t/a.bin")

    (tier_root / mount_dir).symlink_to(outside)
    with pytest.raises(PathEscapeError, match=f"{mount_dir} is a symbolic link"):
        manager.load("t/a.bin", "hdfs", info, lambda: source_store.open_read("t/a.bin"))
    with manager.open("t/a.bin") as stream:  # the fill fails; the reader gets the source's bytes
        assert stream.read() == b"t/a.bin" * 100
    assert manager.lookup("t/a.bin", info) is None

    (tier_root / mount_dir).unlink()
    (tier_root / mount_dir).mkdir()
    (tier_root / mount_dir / prefix).symlink_to(outside / "sub")
    with pytest.raises(PathEscapeError, match=f"{prefix} is a symbolic link"):
        manager.load("t/a.bin", "hdfs", info, lambda: source_store.open_read("t/a.bin"))
    manager.close()
    assert snapshot(outside) == before


def test_a_cached_copy_swapped_for_a_link_is_never_served(tmp_path, mem_dir, source_store, outside):
    manager = manager_for(tmp_path, mem_dir, source_store)
    info = source_store.info("t/a.bin")
    entry = manager.load("t/a.bin", "hdfs", info, lambda: source_store.open_read("t/a.bin")).entry
    copy = mem_dir / "tier" / entry.location
    copy.unlink()
    copy.symlink_to(outside / "secret.txt")
    with pytest.raises(PathEscapeError):
        manager.open_cached(entry)
    manager.close()
