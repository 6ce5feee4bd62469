"""HdfsStore on a Kerberized Apache Hadoop 3.5 (the ``kerberized_hdfs`` fixture: MiniKdc + NameNode + DataNode).

The store logs in with the keytab and principal of its Airflow connection, into a credential cache of its own,
and speaks SPNEGO to the namenode only: the namenode's redirects carry a delegation token to the data node,
which gets no ``Authorization`` header, no namenode cookie and no SPNEGO attempt. A wrong principal, a missing
keytab or an expired ticket is a :class:`KerberosAuthError` naming the connection; a request without Kerberos
is refused. An expired ticket is made, not waited for: a real ticket of the KDC whose times in the ccache
are moved an hour into the past (MIT's FILE ccache format, through ``krb5``'s own (un)marshalling), beside a
control ccache made the same way with its times unchanged.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import random
import struct
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from airflow_hybrid.devstack.stack import airflow_env, devstack_connections
from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.migration.planner import load_plan, plan_migration
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.hdfs.checksum import HdfsFileChecksum
from airflow_hybrid.stores.hdfs.kerberos import KerberosAuthError
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.integration.migrate_support import POLICY, make_dataset
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
FAST = {"retry_backoff": 0.001, "max_attempts": 2}


@pytest.fixture
def connect(kerberized_hdfs, monkeypatch, tmp_path):
    """``connect(conn_id, **extra)``: an Airflow connection to the Kerberized cluster (alice's keytab unless
    ``extra`` says otherwise; ``None`` removes an extra); its id."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))

    def make(conn_id: str = "webhdfs_krb", login: str | None = None, **extra) -> str:
        conn = kerberized_hdfs.webhdfs_connection()
        if login is not None:
            conn["login"] = login
        conn["extra"] = {key: value for key, value in {**conn["extra"], **extra}.items() if value is not None}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return make


def _store(conn_id: str, root: str | None = None, **options) -> HdfsStore:
    return HdfsStore(f"hdfs://{root or f'/tmp/krb-{uuid.uuid4().hex[:10]}'}", webhdfs_conn_id=conn_id,
                     options={**FAST, **options})  # fmt: skip


class Exchanges:
    """Every response the store's session got (after requests-kerberos's handling), with its request; and the
    ones that answered a SPNEGO challenge (a 401 in their history when they arrived: requests resets the
    history of a redirect it follows or records)."""

    def __init__(self, store: HdfsStore, datanode: str) -> None:
        self.datanode = datanode
        self.seen: list[requests.Response] = []
        self.challenged: list[requests.Response] = []
        self._lock = threading.Lock()
        store.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args, **kwargs) -> None:
        with self._lock:
            self.seen.append(response)
            if any(earlier.status_code == 401 for earlier in response.history):
                self.challenged.append(response)

    def at_datanode(self) -> list[requests.Response]:
        return [r for r in self.seen if urlparse(r.url).netloc == self.datanode]

    def at_namenode(self) -> list[requests.Response]:
        return [r for r in self.seen if urlparse(r.url).netloc != self.datanode]


def _datanode(hdfs) -> str:
    return urlparse(hdfs.state()["datanode_url"]).netloc


# -- working -------------------------------------------------------------------------------------------
def test_write_list_read_and_checksum_over_spnego_with_delegation_tokens_at_the_data_node(connect, kerberized_hdfs):
    store = _store(connect(), verify_checksum=True)
    store.mkdir("")
    exchanges = Exchanges(store, _datanode(kerberized_hdfs))
    store.session.cookies.clear()  # the namenode's auth cookie from connecting: authenticate anew
    rng = random.Random(11)
    files = {"two-blocks.bin": rng.randbytes(5 * MiB), "small.txt": b"kerberized\n", "empty": b""}
    for name, data in files.items():
        info = store.write(f"d/{name}", io.BytesIO(data))
        assert info.size == len(data)

    assert sorted(i.path for i in store.list("d")) == sorted(f"d/{name}" for name in files)
    for name, data in files.items():
        with store.open_read(f"d/{name}") as stream:
            assert stream.read() == data
        with store.open_read(f"d/{name}", offset=len(data) // 2, length=1000) as stream:
            assert stream.read() == data[len(data) // 2 : len(data) // 2 + 1000]
        expected = HdfsFileChecksum.of_stream(io.BytesIO(data), block_size=kerberized_hdfs.block_size)
        assert store.checksum(f"d/{name}") == expected
    assert store.info("d/small.txt").extra["owner"] == "alice"  # the principal's short name

    # The namenode was reached with SPNEGO: a 401 challenge answered with a Negotiate token.
    challenged = exchanges.challenged
    assert challenged and all(r.request.headers["Authorization"].startswith("Negotiate ") for r in challenged)
    assert all(urlparse(r.url).netloc != exchanges.datanode for r in challenged)
    # The data node: every request (CREATE bodies, OPEN, GETFILECHECKSUM redirects) with a delegation token,
    # nothing of the namenode's credentials, never challenged, never refused.
    datanode = exchanges.at_datanode()
    methods = {(r.request.method, dict(p.split("=", 1) for p in urlparse(r.url).query.split("&"))["op"]) for r in datanode}
    assert {("PUT", "CREATE"), ("GET", "OPEN"), ("GET", "GETFILECHECKSUM")} <= methods
    for response in datanode:
        assert "delegation=" in response.url, response.url
        assert "Authorization" not in response.request.headers, response.url
        assert "hadoop.auth" not in response.request.headers.get("Cookie", ""), response.url
        assert response.status_code < 400, (response.status_code, response.url)


def test_the_identity_is_the_principal_not_the_connection_login(connect, kerberized_hdfs):
    """bob (no group) with the login ``hdfs`` (the superuser's name) is bob: user.name is not sent."""
    kdc = kerberized_hdfs.kerberos
    private = f"/krb-private-{uuid.uuid4().hex[:8]}"
    kerberized_hdfs.superuser_call("PUT", private, "MKDIRS", permission="755")
    conn_id = connect(
        "webhdfs_krb_bob", login="hdfs", kerberos_principal=kdc.principal("bob"), kerberos_keytab=str(kdc.keytab("bob"))
    )
    store = _store(conn_id, root=private)
    assert "user.name" not in (store.session.params or {})
    with pytest.raises(PermissionError, match="user=bob, access=WRITE"):
        store.write("f", io.BytesIO(b"x"))
    assert store.info("").extra["owner"] == "hdfs"
    tmp = _store(conn_id)
    assert tmp.write("f", io.BytesIO(b"x")).extra["owner"] == "bob"


def test_concurrent_spnego_handshakes_on_one_store(connect, kerberized_hdfs):
    """8 threads, each request a SPNEGO handshake (no auth cookie is kept), each namenode answer mutually
    authenticated: requests-kerberos checks answers until one passes (``auth_done``), which connecting
    already did; reset, as before that first check. With one shared context per host, most of these fail
    (MutualAuthenticationError: a thread steps another's context); the store's contexts are per thread."""
    store = _store(connect())
    store.mkdir("")
    store.write("f", io.BytesIO(b"shared"))
    store.session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # keep none
    store.session.cookies.clear()
    store.session.auth.auth_done = False
    exchanges = Exchanges(store, _datanode(kerberized_hdfs))
    start = threading.Barrier(8)

    def work(i: int) -> bytes:
        if i < 8:
            start.wait(timeout=30)  # the first eight handshakes at once
        assert store.info("f").size == 6
        with store.open_read("f") as stream:
            return stream.read()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(48))) == [b"shared"] * 48
    assert len(exchanges.challenged) >= 96  # GETFILESTATUS and OPEN, each authenticated anew


# -- refused -------------------------------------------------------------------------------------------
def test_an_unauthenticated_request_is_refused(connect, kerberized_hdfs):
    url = f"{kerberized_hdfs.webhdfs_url}/webhdfs/v1/tmp"
    for params in ({"op": "LISTSTATUS"}, {"op": "LISTSTATUS", "user.name": "hdfs"}):
        response = requests.get(url, params=params, timeout=10)
        assert response.status_code == 401, params
        assert response.headers["WWW-Authenticate"].startswith("Negotiate")
    # A data node serves no file without a delegation token.
    state = kerberized_hdfs.state()
    response = requests.get(
        f"{state['datanode_url']}/webhdfs/v1/tmp/none",
        params={"op": "OPEN", "namenoderpcaddress": urlparse(state["fs_uri"]).netloc, "user.name": "hdfs"},
        timeout=10,
    )
    assert response.status_code in (401, 403), response.text[:300]
    # A store whose connection has no Kerberos is told so.
    conn_id = connect("webhdfs_plain", kerberos_principal=None, kerberos_keytab=None, krb5_conf=None)
    with pytest.raises(KerberosAuthError, match=r"'webhdfs_plain'.*requires Kerberos \(SPNEGO\)"):
        _store(conn_id).info("")


def test_a_wrong_principal_is_a_clear_error_naming_the_connection(connect, kerberized_hdfs):
    conn_id = connect("webhdfs_bob", kerberos_principal="bob@EXAMPLE.COM")  # with alice's keytab
    with pytest.raises(KerberosAuthError) as caught:
        _store(conn_id).info("")
    message = str(caught.value)
    assert "'webhdfs_bob'" in message and "kerberos_principal" in message
    assert "holds no key for <kerberos_principal> (it holds keys of 1 other principal(s))" in message
    assert "bob@" not in message and "alice@" not in message and "EXAMPLE.COM" not in message  # never logged
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, HybridError)

    unknown_realm = connect("webhdfs_realm", kerberos_principal="alice@NOWHERE.ORG")
    with pytest.raises(KerberosAuthError, match=r"'webhdfs_realm'.*holds no key for <kerberos_principal>"):
        _store(unknown_realm).info("")


def test_a_missing_keytab_is_a_clear_error_naming_the_connection(connect, tmp_path):
    missing = tmp_path / "gone.keytab"
    conn_id = connect("webhdfs_nokeytab", kerberos_keytab=str(missing))
    with pytest.raises(KerberosAuthError, match=r"'webhdfs_nokeytab'.*keytab <kerberos_keytab> does not exist"):
        _store(conn_id).info("")


# -- tickets in a ccache -------------------------------------------------------------------------------
def _times_offset(marshalled: bytes) -> int:
    """Where the four ticket times start in a credential in MIT's FILE ccache v4 format: after the client and
    server principals (name type, component count, realm and components) and the session key."""
    pos = 0
    for _ in range(2):
        (count,) = struct.unpack_from(">I", marshalled, pos + 4)
        pos += 8
        for _ in range(count + 1):
            (length,) = struct.unpack_from(">I", marshalled, pos)
            pos += 4 + length
    (length,) = struct.unpack_from(">I", marshalled, pos + 2)
    return pos + 6 + length


def _ticket_cache(kdc, path: Path, *, shift: int) -> Path:
    """A FILE ccache with a real TGT of alice's from the KDC, its times moved by ``shift`` seconds."""
    import krb5

    source = kdc.login("alice", path.with_suffix(".source"))
    ctx = krb5.init_context()
    creds = next(iter(krb5.cc_resolve(ctx, f"FILE:{source}".encode())))
    data = bytearray(krb5.marshal_credentials(ctx, creds))
    offset = _times_offset(bytes(data))
    times = struct.unpack_from(">4I", data, offset)
    assert times == tuple(creds.times), "the ccache format parsed wrongly"
    struct.pack_into(">4I", data, offset, *(t + shift if t else 0 for t in times))
    moved = krb5.unmarshal_credentials(ctx, bytes(data))
    assert moved.times.endtime == creds.times.endtime + shift
    cache = krb5.cc_resolve(ctx, f"FILE:{path}".encode())
    krb5.cc_initialize(ctx, cache, creds.client)
    krb5.cc_store_cred(ctx, cache, moved)
    return path


def test_a_valid_ticket_cache_works_without_a_keytab(connect, kerberized_hdfs, tmp_path):
    """The control of the expired-ticket tests: same ccache making, times unchanged."""
    ccache = _ticket_cache(kerberized_hdfs.kerberos, tmp_path / "valid.ccache", shift=0)
    conn_id = connect("webhdfs_ccache", kerberos_keytab=None, kerberos_ccache=str(ccache))
    assert _store(conn_id, root="/tmp").info("").is_dir


def test_an_expired_ticket_is_a_clear_error_naming_the_connection(connect, kerberized_hdfs, tmp_path):
    kdc = kerberized_hdfs.kerberos
    ccache = _ticket_cache(kdc, tmp_path / "expired.ccache", shift=-(kdc.max_ticket_lifetime + 3600))
    conn_id = connect("webhdfs_expired", kerberos_keytab=None, kerberos_ccache=str(ccache))
    with pytest.raises(KerberosAuthError, match=rf"'webhdfs_expired'.*kerberos_principal.*FILE:{ccache} has expired"):
        _store(conn_id).info("")


def test_a_ticket_that_expires_while_the_store_runs_is_a_clear_error(connect, kerberized_hdfs, tmp_path):
    kdc = kerberized_hdfs.kerberos
    ccache = _ticket_cache(kdc, tmp_path / "live.ccache", shift=0)
    expired = _ticket_cache(kdc, tmp_path / "old.ccache", shift=-(kdc.max_ticket_lifetime + 3600))
    store = _store(connect("webhdfs_expiring", kerberos_keytab=None, kerberos_ccache=str(ccache)), root="/tmp")
    assert store.info("").is_dir
    os.replace(expired, ccache)  # the cache's ticket is now past its end (no renewer kept it fresh)
    store.session.cookies.clear()  # and the namenode's auth cookie has lapsed: the next request needs SPNEGO
    with pytest.raises(KerberosAuthError, match=r"'webhdfs_expiring'.*has expired"):
        store.info("")


def test_a_keytab_login_uses_a_credential_cache_of_its_own(connect, kerberized_hdfs, monkeypatch, tmp_path):
    default = tmp_path / "default.ccache"
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{default}")
    one, two = _store(connect(), root="/tmp"), _store(connect(), root="/tmp")
    assert one.info("").is_dir and two.info("").is_dir
    assert one._kerberos.ccache.startswith("MEMORY:") and one._kerberos.ccache != two._kerberos.ccache
    assert not default.exists()  # the user's default cache is never touched


# -- migration -----------------------------------------------------------------------------------------
def test_migration_from_kerberized_hdfs_to_s3(connect, kerberized_hdfs, moto_endpoint, s3_client, monkeypatch):
    bucket, name = "krb-lake", f"krb-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    webhdfs = connect("webhdfs_krb_lake")
    connections = devstack_connections(
        webhdfs_host=kerberized_hdfs.webhdfs_host, webhdfs_port=kerberized_hdfs.webhdfs_port,
        s3_endpoint=moto_endpoint, mount_conn_id="krb_lake", webhdfs_conn_id=webhdfs, aws_conn_id=AWS_CONN_ID,
        bucket=bucket, hdfs_root=f"/tmp/{name}", s3_prefix=name,
    )  # fmt: skip
    for key, value in airflow_env({"krb_lake": connections["krb_lake"]}).items():
        monkeypatch.setenv(key, value)
    mount = HybridMount.from_conn_id("krb_lake")
    try:
        dataset = make_dataset(mount, seed=21, small=6, medium=1, new=2)
        plan = plan_migration(mount, dataset.root, POLICY)
        summary = Migrator(mount, parse_policy(POLICY), retry_delay=0.05).run(
            load_plan(None, plan.plan_id).iter_entries(), concurrency=4
        )
        assert (summary.moved, summary.failed, summary.kept) == (len(dataset.old), 0, 0), summary.failures
        dataset.assert_migrated()
    finally:
        mount.close()


def test_airflows_global_kerberos_setting_is_honoured(connect, kerberized_hdfs, monkeypatch):
    """``[core] security = kerberos``: a connection without a principal logs in as ``[kerberos] principal``
    with ``[kerberos] keytab`` (the realm from ``KRB5_CONFIG``), into a cache of its own."""
    kdc = kerberized_hdfs.kerberos
    monkeypatch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")
    monkeypatch.setenv("AIRFLOW__KERBEROS__PRINCIPAL", kdc.principal("bob"))
    monkeypatch.setenv("AIRFLOW__KERBEROS__KEYTAB", str(kdc.keytab("bob")))
    monkeypatch.setenv("KRB5_CONFIG", str(kdc.krb5_conf))
    conn_id = connect("webhdfs_global", kerberos_principal=None, kerberos_keytab=None, krb5_conf=None)
    store = _store(conn_id)
    assert store.write("f", io.BytesIO(b"global")).extra["owner"] == "bob"
    assert store._kerberos.ccache.startswith("MEMORY:")


# -- RPC ----------------------------------------------------------------------------------------------
def test_rpc_needs_a_ticket_too(connect, kerberized_hdfs):
    """The cluster is Kerberized beyond WebHDFS: ``hadoop fs`` (RPC) with alice's ticket lists what the store
    wrote; without a ticket, the namenode refuses simple authentication (``HADOOP_USER_NAME`` is ignored)."""
    import subprocess

    from airflow_hybrid.devstack.hadoop import hadoop_classpath, java_command

    store = _store(connect())
    store.write("seen-over-rpc", io.BytesIO(b"rpc"))
    listing = kerberized_hdfs.fs_shell("-ls", store.root).stdout
    assert f"{store.root}/seen-over-rpc" in listing and " alice " in listing

    classpath = os.pathsep.join([str(kerberized_hdfs.conf_dir), hadoop_classpath()])
    command = kerberized_hdfs._jvm(java_command(), classpath, "fs-shell", ["org.apache.hadoop.fs.FsShell", "-ls", "/"])
    env = {**{k: v for k, v in os.environ.items() if k != "KRB5CCNAME"}, "HADOOP_USER_NAME": "hdfs",
           "KRB5CCNAME": f"FILE:{kerberized_hdfs.base_dir}/no-such-ccache"}  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode != 0
    assert "Client cannot authenticate via:[TOKEN, KERBEROS]" in result.stderr, result.stderr[-2000:]
