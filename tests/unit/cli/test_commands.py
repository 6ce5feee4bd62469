"""``airflow hybrid report``: every mount is reported, a broken one with its error, and the exit status says so."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest

from airflow_hybrid.cli import commands


@pytest.fixture
def mounts(tmp_path, monkeypatch):
    """``good`` (a cache), ``plain`` (no cache), ``broken`` (a negative quota) as ``AIRFLOW_CONN_*`` connections."""
    (tmp_path / "data").mkdir()
    members = {"members": {"local": {"uri": f"file://{tmp_path}/data"}}}
    cache = {
        "tiers": [{"alias": "MEM", "uri": f"file://{tmp_path}/tier", "quota": "64KB"}],
        "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
    }
    connections = {
        "good": {**members, "cache": cache},
        "plain": members,
        "broken": {**members, "cache": {**cache, "tiers": [{**cache["tiers"][0], "quota": "-5MB"}]}},
    }
    for conn_id, extra in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    monkeypatch.setattr(commands, "_db_mount_conn_ids", lambda: [])


def test_every_mount_is_reported_and_a_broken_one_fails_the_command(mounts, capsys):
    with pytest.raises(SystemExit) as exit_:
        commands.cache_report(Namespace(mount=None, json=False))
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "== mount good ==" in out and "Tier MEM" in out
    assert "plain: no cache configured" in out
    assert err.strip() == "error: mount 'broken': ERROR cache.tiers[0].quota: negative quota -5MB"
    assert "Traceback" not in out + err


def test_json_report_holds_each_mount_and_each_error(mounts, capsys):
    with pytest.raises(SystemExit):
        commands.cache_report(Namespace(mount=None, json=True))
    document = json.loads(capsys.readouterr().out)
    assert document["broken"] == {"mount": "broken", "error": "cache.tiers[0].quota: negative quota -5MB"}
    assert document["plain"] == {"mount": "plain", "cache": None}
    assert document["good"]["tiers"][0]["alias"] == "MEM"


def test_a_missing_mount_connection_is_one_line_naming_it(mounts, capsys):
    with pytest.raises(SystemExit) as exit_:
        commands.cache_report(Namespace(mount="nope", json=False))
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: mount 'nope': ERROR connection 'nope' is not defined\n")


def test_only_good_mounts_exit_zero(mounts, capsys):
    commands.cache_report(Namespace(mount="good", json=False))
    assert "== mount good ==" in capsys.readouterr().out


def test_a_bad_store_option_names_the_mount_connection(mounts, monkeypatch, capsys, tmp_path):
    extra = {"members": {"s3": {"uri": "s3://bucket/t", "conn_id": "lake_aws", "options": {"part_size": "1e400MiB"}}}}
    monkeypatch.setenv("AIRFLOW_CONN_BADOPT", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_AWS", json.dumps({"conn_type": "aws"}))
    with pytest.raises(SystemExit):
        commands.cache_report(Namespace(mount="badopt", json=False))
    assert capsys.readouterr().err == (
        "error: mount 'badopt': ERROR connection 'badopt': S3 store option part_size='1e400MiB' is invalid: "
        "cannot parse size '1e400MiB'\n"
    )
