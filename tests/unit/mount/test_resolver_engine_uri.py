"""Engine URIs: what a cluster on another host opens (HDFS namenode-qualified, S3 as ``s3://`` or ``s3a://``)."""

from __future__ import annotations

import pytest

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.resolver import engine_uri, with_s3_scheme
from airflow_hybrid.stores.hdfs.client import WebHdfsConnection
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.stores.s3.store import S3Store


def _hdfs(root="hdfs:///lake", webhdfs="http://nn1.corp:9870", **options):
    return HdfsStore(root, options=options, connection=WebHdfsConnection.insecure(webhdfs, "hive"))


def test_a_hostless_root_takes_the_webhdfs_host_with_the_rpc_port():
    assert engine_uri(_hdfs(), "t/a.parquet") == "hdfs://nn1.corp:8020/lake/t/a.parquet"
    assert engine_uri(_hdfs(), "") == "hdfs://nn1.corp:8020/lake"


def test_the_active_namenode_of_an_ha_pair_when_nothing_else_tells():
    store = _hdfs(webhdfs="http://nn2.corp:9870;http://nn1.corp:9870")
    assert engine_uri(store, "t") == "hdfs://nn2.corp:8020/lake/t"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"namenode": "nn.corp"}, "hdfs://nn.corp:8020/lake/t"),
        ({"namenode": "nn.corp:9000"}, "hdfs://nn.corp:9000/lake/t"),
        ({"namenode": "hdfs://nn.corp:9000/"}, "hdfs://nn.corp:9000/lake/t"),
        ({"namenode": "[::1]:8020"}, "hdfs://[::1]:8020/lake/t"),
        ({"nameservice": "lake-ha"}, "hdfs://lake-ha/lake/t"),
    ],
)
def test_the_namenode_or_nameservice_option_names_the_authority(options, expected):
    assert engine_uri(_hdfs(**options), "t") == expected


def test_a_root_with_its_own_authority_keeps_it():
    assert engine_uri(_hdfs("hdfs://nn.corp:8020/lake"), "t") == "hdfs://nn.corp:8020/lake/t"
    assert engine_uri(_hdfs("hdfs://lake-ha/lake"), "t") == "hdfs://lake-ha/lake/t"
    # webhdfs:// names the HTTP address, not the RPC one: the host with the RPC port.
    assert engine_uri(_hdfs("webhdfs://nn.corp:9870/lake", "http://nn.corp:9870"), "t") == "hdfs://nn.corp:8020/lake/t"
    assert engine_uri(_hdfs("hdfs://lake-ha/lake", nameservice="other"), "t") == "hdfs://other/lake/t"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"namenode": "nn:x"}, "HDFS option namenode: expected host[:port]"),
        ({"namenode": "nn:0"}, "HDFS option namenode: port 0 is out of range"),
        ({"namenode": "nn.corp/lake"}, "HDFS option namenode: expected host[:port]"),
        ({"namenode": "user@nn"}, "HDFS option namenode: expected host[:port]"),
        ({"namenode": "-bad-"}, "HDFS option namenode: expected host[:port]"),
        ({"namenode": 8020}, "HDFS option namenode: expected host[:port]"),
        ({"nameservice": "lake/ha"}, "HDFS option nameservice: expected a nameservice id"),
        ({"nameservice": ""}, "HDFS option nameservice: expected a nameservice id"),
        ({"namenode": "nn", "nameservice": "ha"}, "HDFS options namenode and nameservice are exclusive"),
    ],
)
def test_a_bad_namenode_option_is_refused_naming_it(options, message):
    with pytest.raises(HybridConfigError, match=rf"^hdfs:///lake: {message}".replace("[", r"\[").replace("]", r"\]")):
        _hdfs(**options)


def test_a_mount_member_option_reaches_the_store(dirs):
    hdfs, _ = dirs
    options = {
        "members": {
            "hdfs": {"uri": "hdfs:///lake", "options": {"namenode": "nn.corp:8020"}},
            "local": {"uri": f"file://{hdfs}"},
        },
    }
    mount = HybridMount.from_options("lake", options)
    assert engine_uri(mount.members["hdfs"], "/t/") == "hdfs://nn.corp:8020/lake/t"
    flat = {"mount_options": "alluxio-union.hdfs.uri=hdfs:///lake\nalluxio-union.hdfs.option.nameservice=lake-ha"}
    assert engine_uri(HybridMount.from_options("lake", flat).members["hdfs"], "t") == "hdfs://lake-ha/lake/t"
    with pytest.raises(HybridConfigError, match="HDFS option namenode"):
        HybridMount.from_options("lake", {"members": {"hdfs": {"uri": "hdfs:///l", "options": {"namenode": "a b"}}}})


@pytest.mark.parametrize("root", ["s3://bucket/lake", "s3a://bucket/lake"])
def test_s3_in_the_engine_scheme(root):
    store = S3Store(root)
    assert engine_uri(store, "t/a.parquet") == "s3://bucket/lake/t/a.parquet"
    assert engine_uri(store, "t", s3_scheme="s3a") == "s3a://bucket/lake/t"
    with pytest.raises(HybridConfigError, match="s3_scheme must be one of s3, s3a, got 's3n'"):
        engine_uri(store, "t", s3_scheme="s3n")


def test_other_uris_are_kept(tmp_path):
    assert engine_uri(LocalStore(str(tmp_path)), "t") == f"file://{tmp_path}/t"
    assert with_s3_scheme("hdfs://nn:8020/x", "s3a") == "hdfs://nn:8020/x"
    assert with_s3_scheme("S3://b/x", "s3a") == "s3a://b/x"
