"""What both HDFS servers answer, raw: the devstack's WebHDFS server must answer as Apache Hadoop does for
every operation the store uses (checked here against a real NameNode and DataNode, Hadoop 3.5.0).

Users: ``hdfs_server.user`` (``hdfs``) is the superuser; ``alice`` and ``bob`` are ordinary users of no
group. ``/tmp`` is 1777 on both servers.
"""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

#: 3 MiB + 4 bytes of a fixed pattern, and Hadoop 3.5.0's GETFILECHECKSUM of it for two block sizes.
PATTERN = bytes(range(256)) * (3 * 1024 * 1024 // 256) + b"tail"
HADOOP_CHECKSUMS = {
    1024 * 1024: (
        "MD5-of-2048MD5-of-512CRC32C",
        "000002000000000000000800fca4bf9a145444a77cd6a39dd38cfd6500000000",
    ),
    4 * 1024 * 1024: (
        "MD5-of-0MD5-of-512CRC32C",
        "0000020000000000000000005cc1c99bc90b0837458d5684d205b79b00000000",
    ),
}


@pytest.fixture
def base(hdfs_server) -> str:
    return f"http://{hdfs_server.webhdfs_host}:{hdfs_server.webhdfs_port}/webhdfs/v1"


@pytest.fixture
def top(base) -> str:
    """A fresh directory of alice's under /tmp (the servers are shared by the session)."""
    path = f"/tmp/servers-{uuid.uuid4().hex[:8]}"
    assert call(base, "PUT", path, "MKDIRS", user="alice").json() == {"boolean": True}
    return path


def call(
    base: str, method: str, path: str, op: str | None, user: str | None = "hdfs", **params
) -> requests.Response:
    """One namenode request, redirects not followed; ``user=None`` sends no ``user.name``."""
    query = {**({"op": op} if op else {}), **({"user.name": user} if user else {}), **params}
    return requests.request(method, f"{base}{path}", params=query, allow_redirects=False, timeout=60)


def create(base: str, path: str, data: bytes = b"", user: str | None = "hdfs", **params) -> requests.Response:
    """CREATE in Hadoop's two steps: the namenode must redirect; the data node's answer is returned."""
    redirect = call(base, "PUT", path, "CREATE", user=user, **params)
    assert redirect.status_code == 307, redirect.text
    return requests.put(redirect.headers["Location"], data=data, timeout=60)


def follow(base: str, method: str, path: str, op: str, user: str = "hdfs", **params) -> requests.Response:
    redirect = call(base, method, path, op, user=user, **params)
    assert redirect.status_code == 307, redirect.text
    return requests.request(method, redirect.headers["Location"], timeout=60)


def remote(response: requests.Response) -> tuple[int, str, str]:
    """Status, exception and the message's first line (Hadoop's data node appends a stack trace)."""
    error = response.json()["RemoteException"]
    return response.status_code, error["exception"], error["message"].split("\n")[0]


def status(base: str, path: str, user: str = "hdfs") -> dict:
    return call(base, "GET", path, "GETFILESTATUS", user=user).json()["FileStatus"]


def test_open_at_or_past_the_end_of_a_non_empty_file_is_403_ioexception(base, top):
    path = f"{top}/three"
    assert create(base, path, b"abc", user="alice").status_code == 201
    for params in ({"offset": 3}, {"offset": 100}, {"offset": 3, "length": 0}):
        answer = call(base, "GET", path, "OPEN", user="alice", **params)
        assert remote(answer) == (
            403,
            "IOException",
            f"Offset={params['offset']} out of the range [0, 3); OPEN, path={path}",
        )


@pytest.mark.parametrize(
    ("params", "expected"),
    [({}, b"abc"), ({"offset": 1}, b"bc"), ({"offset": 2, "length": 100}, b"c"), ({"length": 0}, b"")],
)
def test_open_reads_ranges_at_the_data_node_which_closes_the_connection(base, top, params, expected):
    create(base, f"{top}/f", b"abc")
    answer = follow(base, "GET", f"{top}/f", "OPEN", **params)
    assert (answer.status_code, answer.content) == (200, expected)
    assert answer.headers["Connection"] == "close"


def test_open_of_empty_missing_and_directory_paths(base, top):
    create(base, f"{top}/empty")
    empty = follow(base, "GET", f"{top}/empty", "OPEN")
    assert (empty.status_code, empty.content) == (200, b"")
    past = follow(base, "GET", f"{top}/empty", "OPEN", offset=1)  # the namenode checks only non-empty files
    assert remote(past) == (403, "EOFException", "Cannot seek after EOF")
    assert remote(call(base, "GET", f"{top}/nope", "OPEN")) == (
        404,
        "FileNotFoundException",
        f"File {top}/nope not found.",
    )
    directory = follow(base, "GET", top, "OPEN")  # redirected, then refused by the data node
    assert remote(directory) == (404, "FileNotFoundException", f"Path is not a file: {top}")
    assert directory.headers["Connection"] == "close"


@pytest.mark.parametrize(
    ("method", "op", "message"),
    [
        ("GET", None, "op=NULL is not supported"),
        ("PUT", None, "op=NULL  is not supported"),
        ("DELETE", None, "op=NULL is not supported"),
        ("GET", "NOSUCH", 'Invalid value for webhdfs parameter "op": java.lang.IllegalArgumentException: '
         "NOSUCH is not a valid GET operation."),
        ("PUT", "OPEN", 'Invalid value for webhdfs parameter "op": java.lang.IllegalArgumentException: '
         "OPEN is not a valid PUT operation."),
    ],
)  # fmt: skip
def test_requests_without_a_valid_op(base, method, op, message):
    answer = call(base, method, "/tmp", op)
    exception = "UnsupportedOperationException" if op is None else "IllegalArgumentException"
    assert remote(answer) == (400, exception, message)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"offset": "-1"}, 'Invalid value for webhdfs parameter "offset": java.lang.IllegalArgumentException: '
         "Invalid parameter range: offset = -1 < 0"),
        ({"offset": "x"}, 'Invalid value for webhdfs parameter "offset": java.lang.IllegalArgumentException: '
         'Failed to parse "x" as a radix-10 long integer.'),
    ],
)  # fmt: skip
def test_bad_parameter_values_are_illegal_argument(base, top, params, message):
    create(base, f"{top}/f", b"abc")
    assert remote(call(base, "GET", f"{top}/f", "OPEN", **params)) == (
        400,
        "IllegalArgumentException",
        message,
    )


def test_parameter_names_are_case_sensitive_but_user_name(base, top):
    create(base, f"{top}/f", b"abc", user="alice")
    ignored = call(base, "GET", f"{top}/f", "OPEN", OFFSET="5")  # not "offset": no range error
    assert ignored.status_code == 307
    assert status(base, f"{top}/f", user=None)["owner"] == "alice"
    assert (
        call(base, "PUT", f"{top}/by-upper", "MKDIRS", user=None, **{"USER.NAME": "alice"}).status_code == 200
    )
    assert status(base, f"{top}/by-upper")["owner"] == "alice"


def test_create_redirect_and_data_node_answer(base, top):
    redirect = call(base, "PUT", f"{top}/f", "CREATE", user="alice", permission="600")
    location = redirect.headers["Location"]
    assert redirect.status_code == 307 and redirect.content == b""
    for part in ("op=CREATE", "user.name=alice", "createparent=true", "overwrite=false", "permission=600"):
        assert part in location.split("?", 1)[1].split("&")
    done = requests.put(location, data=b"abc", timeout=60)
    assert done.status_code == 201
    assert done.headers["Location"].startswith("hdfs://") and done.headers["Location"].endswith(f"{top}/f")
    assert done.headers["Connection"] == "close"
    assert (
        not (anonymous := call(base, "PUT", f"{top}/g", "CREATE", user=None))
        .headers["Location"]
        .count("user.name")
    ), anonymous.headers["Location"]


@pytest.mark.parametrize(
    ("user", "path", "params", "expected"),
    [
        ("alice", "{top}/f", {}, (403, "FileAlreadyExistsException", "{top}/f for client 127.0.0.1 already exists")),
        ("alice", "{top}", {"overwrite": "true"},
         (403, "FileAlreadyExistsException", "{top} already exists as a directory")),
        ("alice", "{top}/f/g", {}, (403, "ParentNotDirectoryException", "{top}/f (is not a directory)")),
        ("bob", "{top}/g", {}, (403, "AccessControlException",
         'Permission denied: user=bob, access=WRITE, inode="{top}":alice:supergroup:drwxr-xr-x')),
        ("bob", "{top}/f", {"overwrite": "true"}, (403, "AccessControlException",
         'Permission denied: user=bob, access=WRITE, inode="{top}":alice:supergroup:drwxr-xr-x')),
        ("alice", "{top}/g", {"blocksize": "1024"}, (403, "IOException",
         "Specified block size 1024 is less than configured minimum value "
         "dfs.namenode.fs-limits.min-block-size=1048576")),
        ("alice", "{top}/g", {"blocksize": "1048577"}, (400, "HadoopIllegalArgumentException",
         "Invalid values: dfs.bytes-per-checksum (=512) must divide block size (=1048577).")),
    ],
)  # fmt: skip
def test_create_is_refused_at_the_data_node_step(base, top, user, path, params, expected):
    create(base, f"{top}/f", b"abc", user="alice")
    path = path.format(top=top)
    redirect = call(base, "PUT", path, "CREATE", user=user, **params)
    assert redirect.status_code == 307  # the namenode only builds the redirect
    refused = requests.put(redirect.headers["Location"], data=b"new", timeout=60)
    status_code, exception, message = expected
    assert remote(refused) == (status_code, exception, message.format(top=top))
    assert refused.headers["Connection"] == "close"
    assert follow(base, "GET", f"{top}/f", "OPEN").content == b"abc"


def test_owner_group_and_permissions_of_new_files_and_directories(base, top):
    assert create(base, f"{top}/a/b/f", b"abc", user="alice", permission="600").status_code == 201
    assert create(base, f"{top}/plain", b"abc", user="bob").status_code == 403  # top is alice's 755
    create(base, f"{top}/g", b"abc", user="alice")
    call(base, "PUT", f"{top}/m/n", "MKDIRS", user="alice", permission="600")
    call(base, "PUT", f"{top}/d", "MKDIRS", user="alice")
    expected = {
        top: "755", f"{top}/a": "755", f"{top}/a/b": "755", f"{top}/a/b/f": "600", f"{top}/g": "644",
        f"{top}/m": "700", f"{top}/m/n": "600", f"{top}/d": "755",
    }  # fmt: skip
    got = {path: status(base, path) for path in expected}
    assert {path: s["permission"] for path, s in got.items()} == expected
    assert {(s["owner"], s["group"]) for s in got.values()} == {("alice", "supergroup")}
    fresh = f"/tmp/servers-{uuid.uuid4().hex[:8]}"
    create(base, f"{fresh}/c/f", b"x", user="alice")
    assert [status(base, p)["permission"] for p in (fresh, f"{fresh}/c")] == [
        "777",
        "777",
    ]  # from /tmp's 1777
    call(base, "DELETE", fresh, "DELETE", recursive="true")
    create(base, f"{top}/a/b/by-hdfs", b"x")
    assert (status(base, f"{top}/a/b/by-hdfs")["owner"], status(base, f"{top}/a/b/by-hdfs")["group"]) == (
        "hdfs",
        "supergroup",
    )


def test_permission_checks_owner_other_traverse_and_sticky_bit(base, top, hdfs_server):
    call(base, "PUT", f"{top}/private", "MKDIRS", user="alice", permission="700")
    create(base, f"{top}/private/f", b"abc", user="alice")
    create(base, f"{top}/secret", b"abc", user="alice", permission="600")
    private = f'"{top}/private":alice:supergroup:drwx------'
    denied = "AccessControlException"
    assert remote(call(base, "GET", f"{top}/private", "LISTSTATUS", user="bob")) == (
        403, denied, f"Permission denied: user=bob, access=READ_EXECUTE, inode={private}",
    )  # fmt: skip
    assert remote(call(base, "GET", f"{top}/private", "LISTSTATUS_BATCH", user="bob"))[2].endswith(private)
    assert remote(call(base, "GET", f"{top}/private/f", "GETFILESTATUS", user="bob")) == (
        403, denied, f"Permission denied: user=bob, access=EXECUTE, inode={private}",
    )  # fmt: skip
    assert remote(call(base, "GET", top, "GETCONTENTSUMMARY", user="bob"))[2].endswith(private)
    secret = f'"{top}/secret":alice:supergroup:-rw-------'
    assert remote(call(base, "GET", f"{top}/secret", "OPEN", user="bob")) == (
        403, denied, f"Permission denied: user=bob, access=READ, inode={secret}",
    )  # fmt: skip
    assert remote(call(base, "PUT", f"{top}/secret", "SETTIMES", user="bob", modificationtime="1000")) == (
        403, denied, f"Permission denied: user=bob, access=WRITE, inode={secret}",
    )  # fmt: skip
    assert remote(call(base, "PUT", f"{top}/secret", "SETPERMISSION", user="bob", permission="777")) == (
        403, denied, f"Permission denied. user=bob is not the owner of inode={top}/secret",
    )  # fmt: skip
    assert remote(call(base, "DELETE", f"{top}/secret", "DELETE", user="bob"))[2] == (
        f'Permission denied: user=bob, access=WRITE, inode="{top}":alice:supergroup:drwxr-xr-x'
    )
    sticky = remote(call(base, "DELETE", top, "DELETE", user="bob", recursive="true"))
    assert sticky[:2] == (403, denied)
    assert sticky[2].startswith(
        f'Permission denied by sticky bit: user=bob, path="{top}":alice:supergroup:drwxr-xr-x'
    )
    assert sticky[2].endswith(":supergroup:drwxrwxrwt")
    assert call(base, "GET", f"{top}/secret", "OPEN", user=hdfs_server.user).status_code == 307  # superuser
    assert (
        call(base, "PUT", f"{top}/secret", "SETPERMISSION", user="alice", permission="604").status_code == 200
    )
    assert follow(base, "GET", f"{top}/secret", "OPEN", user="bob").content == b"abc"  # other: r
    assert call(base, "DELETE", top, "DELETE", user="alice", recursive="true").json() == {"boolean": True}


@pytest.mark.parametrize("user", ["alice", "hdfs"])
def test_a_path_under_a_file(base, top, user):
    create(base, f"{top}/f", b"x", user="alice")
    under = f"{top}/f/x"
    not_dir = f"{top}/f (is not a directory)"
    superuser = user == "hdfs"
    for method, op, params, expected in [
        ("GET", "GETFILESTATUS", {}, (404, "FileNotFoundException", f"File does not exist: {under}")
         if superuser else (403, "AccessControlException", not_dir)),
        ("GET", "OPEN", {}, (404, "FileNotFoundException", f"File {under} not found.")
         if superuser else (403, "AccessControlException", not_dir)),
        ("GET", "LISTSTATUS", {}, (403, "AccessControlException", not_dir)),
        ("DELETE", "DELETE", {}, (403, "AccessControlException", not_dir)),
        ("PUT", "MKDIRS", {}, (403, "ParentNotDirectoryException", not_dir)),
        ("PUT", "RENAME", {"destination": f"{top}/g"}, (403, "AccessControlException", not_dir)),
    ]:  # fmt: skip
        assert remote(call(base, method, under, op, user=user, **params)) == expected, op
    moved = call(base, "PUT", f"{top}/f", "RENAME", user=user, destination=f"{under}/y", renameoptions="NONE")
    assert remote(moved) == (403, "ParentNotDirectoryException", not_dir)


def test_file_status_block_size_and_checksum_use_the_files_own_block_size(base, top, hdfs_server):
    create(base, f"{top}/small-blocks", PATTERN, blocksize=str(1024 * 1024))
    create(base, f"{top}/big-blocks", PATTERN, blocksize=str(4 * 1024 * 1024))
    for name, block_size in (("small-blocks", 1024 * 1024), ("big-blocks", 4 * 1024 * 1024)):
        file_status = status(base, f"{top}/{name}")
        assert (file_status["blockSize"], file_status["length"]) == (block_size, len(PATTERN))
        checksum = follow(base, "GET", f"{top}/{name}", "GETFILECHECKSUM")
        assert checksum.headers["Connection"] == "close"
        algorithm, value = HADOOP_CHECKSUMS[block_size]
        assert checksum.json() == {"FileChecksum": {"algorithm": algorithm, "bytes": value, "length": 28}}
    listed = call(base, "GET", top, "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    assert {s["pathSuffix"]: s["blockSize"] for s in listed} == {
        "big-blocks": 4194304,
        "small-blocks": 1048576,
    }


@pytest.mark.parametrize(
    ("data", "algorithm", "value"),
    [
        (b"", "MD5-of-0MD5-of-0CRC32", "00000000000000000000000070bc8f4b72a86921468bf8e8441dce5100000000"),
        (
            b"world\n",
            "MD5-of-0MD5-of-512CRC32C",
            "000002000000000000000000a74dcf6d5ba98e50ae0182c9d5d886fe00000000",
        ),
    ],
)
def test_checksum_of_small_files(base, top, data, algorithm, value):
    create(base, f"{top}/f", data)
    answer = follow(base, "GET", f"{top}/f", "GETFILECHECKSUM")
    assert answer.json() == {"FileChecksum": {"algorithm": algorithm, "bytes": value, "length": 28}}
    assert remote(call(base, "GET", f"{top}/nope", "GETFILECHECKSUM")) == (
        404, "FileNotFoundException", f"File {top}/nope not found.",
    )  # fmt: skip


def test_liststatus_batch_pages_with_lowercase_startafter(base, top):
    for name in "abcde":
        create(base, f"{top}/{name}", b"x")

    def page(**params) -> tuple[list[str], int]:
        listing = call(base, "GET", top, "LISTSTATUS_BATCH", **params).json()["DirectoryListing"]
        names = [s["pathSuffix"] for s in listing["partialListing"]["FileStatuses"]["FileStatus"]]
        return names, listing["remainingEntries"]

    assert page() == (list("abcde"), 0)
    assert page(startafter="b") == (list("cde"), 0)
    assert page(startafter="bb") == (list("cde"), 0)  # need not name an entry
    assert page(startafter="zz") == ([], 0)
    assert page(startAfter="b") == (list("abcde"), 0)  # Hadoop 3.5 ignores the camel-case name
    assert remote(call(base, "GET", f"{top}/zz", "LISTSTATUS_BATCH")) == (
        404, "FileNotFoundException", f"File {top}/zz does not exist.",
    )  # fmt: skip
    single = call(base, "GET", f"{top}/a", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    assert [(s["pathSuffix"], s["type"], s["owner"]) for s in single] == [("", "FILE", "hdfs")]


@pytest.mark.parametrize(
    ("src", "dst", "options", "expected"),
    [
        ("f", "no/where", None, {"boolean": False}),
        ("f", "g", None, {"boolean": False}),
        ("f", "f", None, {"boolean": True}),
        ("d", "d/in", None, {"boolean": False}),
        ("missing", "x", None, {"boolean": False}),
        ("g", "d", None, {"boolean": True, "moved": "d/g"}),
        ("f", "x", None, {"boolean": True, "moved": "x"}),
        ("missing", "x", "NONE", (404, "FileNotFoundException", "rename source {top}/missing is not found.")),
        ("f", "g", "NONE", (403, "FileAlreadyExistsException", "rename destination {top}/g already exists")),
        ("f", "g", "OVERWRITE", {"moved": "g"}),
        ("f", "d", "OVERWRITE", (403, "IOException",
         "Source {top}/f and destination {top}/d must both be directories")),
        ("e", "d", "OVERWRITE", (403, "IOException", "rename destination directory is not empty: {top}/d")),
        ("d", "e", "OVERWRITE", {"moved": "e"}),
        ("f", "no/where", "NONE", (404, "FileNotFoundException",
         "rename destination parent {top}/no/where not found.")),
        ("f", "f", "OVERWRITE", (403, "FileAlreadyExistsException",
         "The source {top}/f and destination {top}/f are the same")),
        ("d", "d/x/y", "NONE", (403, "ParentNotDirectoryException", "{top}/d/x (is not a directory)")),
        ("d", "d/in", "NONE", (403, "IOException",
         "Rename destination {top}/d/in is a directory or file under source {top}/d")),
        ("f", "/", "OVERWRITE", (403, "IOException", "rename destination cannot be the root")),
        ("f", "x", "BOGUS", (400, "IllegalArgumentException", 'Invalid value for webhdfs parameter "renameoptions": '
         "java.lang.IllegalArgumentException: No enum constant org.apache.hadoop.fs.Options.Rename.BOGUS")),
    ],
)  # fmt: skip
def test_rename_and_rename2(base, top, src, dst, options, expected):
    for name, data in (("f", b"f"), ("g", b"g"), ("d/x", b"x")):
        create(base, f"{top}/{name}", data)
    call(base, "PUT", f"{top}/e", "MKDIRS")
    destination = dst if dst.startswith("/") else f"{top}/{dst}"
    answer = call(base, "PUT", f"{top}/{src}", "RENAME", destination=destination,
                  **({"renameoptions": options} if options else {}))  # fmt: skip
    if isinstance(expected, tuple):
        assert remote(answer) == (expected[0], expected[1], expected[2].format(top=top))
        return
    assert answer.status_code == 200
    if "boolean" in expected:
        assert answer.json() == {"boolean": expected["boolean"]}
    else:
        assert answer.content == b""
    if "moved" in expected:
        assert call(base, "GET", f"{top}/{src}", "GETFILESTATUS").status_code == 404
        assert call(base, "GET", f"{top}/{expected['moved']}", "GETFILESTATUS").status_code == 200


def test_rename_needs_write_on_both_parents(base, top):
    create(base, f"{top}/f", b"x", user="alice")
    call(base, "PUT", "/tmp/bob-" + top.rsplit("-", 1)[1], "MKDIRS", user="bob")
    answer = call(
        base, "PUT", f"{top}/f", "RENAME", user="bob", destination=f"/tmp/bob-{top.rsplit('-', 1)[1]}/f"
    )
    assert remote(answer) == (
        403, "AccessControlException",
        f'Permission denied: user=bob, access=WRITE, inode="{top}":alice:supergroup:drwxr-xr-x',
    )  # fmt: skip


def test_delete(base, top):
    create(base, f"{top}/d/f", b"x")
    refused = call(base, "DELETE", f"{top}/d", "DELETE", recursive="false")
    assert remote(refused) == (
        403, "PathIsNotEmptyDirectoryException", f"`{top}/d is non empty': Directory is not empty",
    )  # fmt: skip
    assert remote(call(base, "DELETE", f"{top}/d", "DELETE", recursive="maybe")) == (
        400, "IllegalArgumentException",
        'Invalid value for webhdfs parameter "recursive": java.lang.IllegalArgumentException: '
        'Failed to parse "maybe" to Boolean.',
    )  # fmt: skip
    assert call(base, "DELETE", f"{top}/nope", "DELETE").json() == {"boolean": False}
    assert call(base, "DELETE", "/", "DELETE", recursive="true").json() == {"boolean": False}
    assert call(base, "DELETE", f"{top}/d", "DELETE", recursive="true").json() == {"boolean": True}
    assert call(base, "GET", f"{top}/d", "GETFILESTATUS").status_code == 404


def test_content_summary(base, top):
    create(base, f"{top}/d/f1", b"12345")
    create(base, f"{top}/d/e/f2", b"123")
    summary = call(base, "GET", f"{top}/d", "GETCONTENTSUMMARY").json()["ContentSummary"]
    assert summary == {
        "directoryCount": 2, "ecPolicy": "", "fileCount": 2, "length": 8, "quota": -1,
        "snapshotDirectoryCount": 0, "snapshotFileCount": 0, "snapshotLength": 0, "snapshotSpaceConsumed": 0,
        "spaceConsumed": 8, "spaceQuota": -1, "typeQuota": {},
    }  # fmt: skip
    one = call(base, "GET", f"{top}/d/f1", "GETCONTENTSUMMARY").json()["ContentSummary"]
    assert (one["directoryCount"], one["fileCount"], one["length"], one["ecPolicy"]) == (
        0,
        1,
        5,
        "Replicated",
    )
    assert remote(call(base, "GET", f"{top}/zz", "GETCONTENTSUMMARY")) == (
        404, "FileNotFoundException", f"File does not exist: {top}/zz",
    )  # fmt: skip


def test_settimes_and_setpermission(base, top):
    create(base, f"{top}/f", b"x")
    done = call(
        base, "PUT", f"{top}/f", "SETTIMES", accesstime="1600000000000", modificationtime="1500000000000"
    )
    assert (done.status_code, done.content) == (200, b"")
    times = status(base, f"{top}/f")
    assert (times["accessTime"], times["modificationTime"]) == (1_600_000_000_000, 1_500_000_000_000)
    assert call(base, "PUT", top, "SETTIMES", modificationtime="1000").status_code == 200  # directories too
    assert status(base, top)["modificationTime"] == 1000
    assert remote(call(base, "PUT", f"{top}/nope", "SETTIMES", modificationtime="1")) == (
        404, "FileNotFoundException", f"File/Directory {top}/nope does not exist.",
    )  # fmt: skip
    assert (
        remote(call(base, "PUT", f"{top}/f", "SETTIMES", modificationtime="-5"))[1]
        == "IllegalArgumentException"
    )
    assert call(base, "PUT", f"{top}/f", "SETPERMISSION").status_code == 200  # no permission: 755
    assert status(base, f"{top}/f")["permission"] == "755"
    assert call(base, "PUT", f"{top}/f", "SETPERMISSION", permission="1600").status_code == 200
    assert status(base, f"{top}/f")["permission"] == "1600"
    assert remote(call(base, "PUT", f"{top}/nope", "SETPERMISSION", permission="700")) == (
        404, "FileNotFoundException", f"Directory/File does not exist {top}/nope",
    )  # fmt: skip
    assert remote(call(base, "PUT", f"{top}/f", "SETPERMISSION", permission="8")) == (
        400, "IllegalArgumentException",
        'Invalid value for webhdfs parameter "permission": java.lang.IllegalArgumentException: '
        'Failed to parse "8" as a radix-8 short integer.',
    )  # fmt: skip


def test_mkdirs(base, top):
    create(base, f"{top}/f", b"x")
    assert call(base, "PUT", f"{top}/d", "MKDIRS").json() == {"boolean": True}
    assert call(base, "PUT", f"{top}/d", "MKDIRS", user="bob").json() == {"boolean": True}  # exists: no check
    assert remote(call(base, "PUT", f"{top}/d/e", "MKDIRS", user="bob"))[2] == (
        f'Permission denied: user=bob, access=WRITE, inode="{top}/d":hdfs:supergroup:drwxr-xr-x'
    )
    assert remote(call(base, "PUT", f"{top}/f", "MKDIRS")) == (
        403, "FileAlreadyExistsException", f"Path is not a directory: {top}/f",
    )  # fmt: skip


@pytest.fixture(params=["devstack", "hadoop"])
def csrf_base(request, tmp_path):
    """A server of each kind with ``dfs.webhdfs.rest-csrf.enabled`` (its own: the option is fixed at start)."""
    if request.param == "hadoop":
        from airflow_hybrid.devstack.hadoop import HadoopError, HadoopHdfs
        from tests.services import unavailable

        server = HadoopHdfs(tmp_path / "hadoop", csrf=True)
        try:
            server.start()
        except HadoopError as error:
            unavailable(f"Apache Hadoop could not be started: {error}")
        port = server.webhdfs_port
    else:
        from airflow_hybrid.devstack.webhdfs import WebHdfsServer

        server = WebHdfsServer(tmp_path / "devstack", csrf=True).start()
        port = server.port
    try:
        yield f"http://127.0.0.1:{port}/webhdfs/v1"
    finally:
        server.stop()


def test_csrf_protection_refuses_browser_writes_without_the_header(csrf_base):
    browser = {"User-Agent": "Mozilla/5.0"}
    url = f"{csrf_base}/tmp/csrf"
    for method, op in (("PUT", "MKDIRS"), ("DELETE", "DELETE"), ("PUT", None)):
        query = {"user.name": "hdfs", **({"op": op} if op else {})}
        refused = requests.request(method, url, params=query, headers=browser, timeout=60)
        assert (refused.status_code, refused.reason, refused.content) == (
            400, "Missing Required Header for CSRF Vulnerability Protection", b"",
        )  # fmt: skip
    assert (
        requests.get(url, params={"op": "GETFILESTATUS", "user.name": "hdfs"}, headers=browser).status_code
        == 404
    )
    assert requests.put(url, params={"op": "MKDIRS", "user.name": "hdfs"}).json() == {
        "boolean": True
    }  # no browser
    with_header = {**browser, "X-XSRF-HEADER": ""}
    redirect = requests.put(
        f"{url}/f", params={"op": "CREATE", "user.name": "hdfs"}, headers=with_header, allow_redirects=False
    )
    assert redirect.status_code == 307
    at_data_node = requests.put(redirect.headers["Location"], data=b"x", headers=browser, timeout=60)
    assert (at_data_node.status_code, at_data_node.headers["Connection"]) == (400, "close")
    done = requests.put(redirect.headers["Location"], data=b"x", headers=with_header, timeout=60)
    assert done.status_code == 201
