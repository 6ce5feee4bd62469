"""ListObjects over a union of local directories: S3 order, each key once, pages bounded by their size."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_hybrid.gateway.listing import Item, decode_token, encode_token, iter_keys, list_page
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.stores.local import LocalStore
from tests.mounts import local_mount_extra


class CountingStore(LocalStore):
    """A local member recording each ``list_sorted`` call's limit and how many entries it returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, int, int]] = []

    def list_sorted(self, path, start_after=None, limit=1000, name_prefix=""):
        found = super().list_sorted(path, start_after, limit, name_prefix)
        self.calls.append((path, limit, len(found)))
        return found


def _mount(root) -> HybridMount:
    spec = local_mount_extra(root, "s3,hdfs", "s3")
    stores = {name: CountingStore(member["uri"]) for name, member in spec["members"].items()}
    return HybridMount.from_options("lake", spec, stores=stores)


def _put(mount: HybridMount, member: str, path: str, data: bytes = b"x") -> None:
    mount.members[member].write(path, io.BytesIO(data))


def _all_pages(mount, prefix="", size=1, delimiter=None) -> list[str]:
    keys, start, after_prefix = [], None, False
    while True:
        page = list_page(mount, prefix, start, size, delimiter=delimiter, after_prefix=after_prefix)
        keys += [item.key for item in page.items]
        if not page.truncated:
            return keys
        start, after_prefix = decode_token(encode_token(page.items[-1]))


def test_keys_in_s3_order_each_once_across_members(tmp_path):
    mount = _mount(tmp_path)
    for i, name in enumerate(["a-b", "a.txt", "a/x", "a/y/z", "a0", "b", "c/d/e"]):
        _put(mount, "hdfs" if i % 2 else "s3", name)
    _put(mount, "s3", "b", b"both members")  # mid-migration: in both, S3 read first
    expected = ["a-b", "a.txt", "a/x", "a/y/z", "a0", "b", "c/d/e"]
    for size in (1, 2, 3, 1000):
        assert _all_pages(mount, size=size) == expected
    assert _all_pages(mount, delimiter="/") == ["a-b", "a.txt", "a/", "a0", "b", "c/"]
    assert _all_pages(mount, prefix="a", delimiter="/", size=2) == ["a-b", "a.txt", "a/", "a0"]
    assert _all_pages(mount, prefix="a/") == ["a/x", "a/y/z"]
    assert [i.key for i in iter_keys(mount, "", "a/x")] == ["a/y/z", "a0", "b", "c/d/e"]
    assert [i.key for i in iter_keys(mount, "", "a/")] == ["a/x", "a/y/z", "a0", "b", "c/d/e"]
    assert [i.key for i in iter_keys(mount, "", "a/", delimiter="/", after_prefix=True)] == ["a0", "b", "c/"]
    sizes = {item.key: item.info.size for item in iter_keys(mount)}
    assert sizes["b"] == 12  # the read-priority member's entry


def test_a_page_costs_its_size_whatever_the_directory(tmp_path):
    mount = _mount(tmp_path)
    for i in range(1500):
        _put(mount, "hdfs" if i % 3 else "s3", f"big/f{i:05d}")
    page = list_page(mount, "big/", "big/f00700", 10)
    assert [item.key for item in page.items] == [f"big/f{i:05d}" for i in range(701, 711)] and page.truncated
    calls = [call for store in mount.members.values() for call in store.calls]
    assert len(calls) == 2 * len(mount.members) - 1  # one listing per step of the union's listing sequence
    assert all(limit == 12 and found <= 12 for _, limit, found in calls)  # O(page) entries held


def test_a_directory_shadowed_by_a_higher_priority_file_is_listed_once(tmp_path):
    mount = _mount(tmp_path)
    _put(mount, "s3", "x")  # a file x in the read-priority member
    _put(mount, "hdfs", "x/inner")  # a directory x in the other
    _put(mount, "s3", "x.y")
    assert _all_pages(mount, delimiter="/", size=1) == ["x", "x.y"]


def test_tokens_round_trip_and_bad_ones_are_invalid_arguments():
    from airflow_hybrid.gateway.errors import S3Error

    assert decode_token(encode_token(Item("a/b/", None))) == ("a/b/", True)
    with pytest.raises(S3Error) as err:
        decode_token("garbage!")
    assert err.value.code == "InvalidArgument"


_segment = st.sampled_from(["a", "a-", "a.", "b", "a0", "é", "z z"])
_paths = st.lists(st.lists(_segment, min_size=1, max_size=3).map("/".join), min_size=1, max_size=12, unique=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hdfs=_paths, s3=_paths, size=st.integers(1, 4), data=st.data())
def test_pages_concatenate_to_the_sorted_union(tmp_path_factory, hdfs, s3, size, data):
    everything = set(hdfs) | set(s3)
    # a consistent namespace: no path is a file in one place and a directory in another
    files = {p for p in everything if not any(q.startswith(p + "/") for q in everything)}
    mount = _mount(tmp_path_factory.mktemp("lake"))
    for member, paths in (("hdfs", hdfs), ("s3", s3)):
        for path in paths:
            if path in files:
                _put(mount, member, path)
    assert _all_pages(mount, size=size) == sorted(files)
    start = data.draw(st.sampled_from(sorted(files)))
    assert [item.key for item in iter_keys(mount, "", start)] == [k for k in sorted(files) if k > start]


class MovingStore(CountingStore):
    """A member that runs ``after_list`` (a migration step) right after its ``list_sorted`` calls."""

    after_list = None

    def list_sorted(self, path, start_after=None, limit=1000, name_prefix=""):
        found = super().list_sorted(path, start_after, limit, name_prefix)
        if self.after_list is not None:
            self.after_list()
        return found


@pytest.mark.parametrize("source", ["s3", "hdfs"])
@pytest.mark.parametrize("gap", [0, 1])
def test_a_file_migrating_while_a_page_is_made_is_listed_once(tmp_path, source, gap):
    """The file moves (copied to the other member, then removed from its own) between two of the page's
    listings (``hdfs, s3, hdfs`` for read priority ``s3,hdfs``): it is listed exactly once."""
    spec = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    stores = {name: MovingStore(member["uri"]) for name, member in spec["members"].items()}
    mount = HybridMount.from_options("lake", spec, stores=stores)
    target = "hdfs" if source == "s3" else "s3"
    for name in ("t/a", "t/moving", "t/z"):
        _put(mount, source if name == "t/moving" else "s3", name)
    sequence = mount.listing_sequence()
    calls = {"n": 0}

    def step():
        if calls["n"] == gap:
            with mount.members[source].open_read("t/moving") as data:
                mount.members[target].write("t/moving", data)
            mount.members[source].delete("t/moving")
        calls["n"] += 1

    for member in set(sequence):
        stores[member].after_list = step
    assert [item.key for item in list_page(mount, "t/", None, 10).items] == ["t/a", "t/moving", "t/z"]
    assert not mount.members[source].exists("t/moving")  # it did move meanwhile
