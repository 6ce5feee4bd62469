"""The mount ``airflow hybrid devstack up`` writes (``connections(cache_dir=...)``): on the running devstack it
builds, has the cache every shipped DAG expects (``hybrid_cache_warming`` prefetches into its default tier,
``hybrid_ufs_migrate`` keeps its state, the report lists the tiers), and its catalog lives beside the tiers.

The end-to-end version, ``airflow hybrid devstack up`` on a real deployment followed by the shipped DAGs, is
tests/e2e/test_fresh_deployment.py.
"""

from __future__ import annotations

import io
import json

from airflow_hybrid.cache.ops import prefetch
from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.mount import HybridMount

MOUNT = "onprem_union"


def test_the_devstack_up_mount_has_a_cache_the_shipped_dags_can_use(devstack, tmp_path, monkeypatch):
    cache_dir = tmp_path / "data" / "cache"
    connections = devstack.connections(mount_conn_id=MOUNT, cache_dir=cache_dir)
    json.dumps(connections)  # what write_connections stores: plain JSON
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    for name, value in airflow_env(connections).items():
        monkeypatch.setenv(name, value)

    with HybridMount.from_conn_id(MOUNT) as mount:
        assert mount.cache is not None, "the mount has no cache: hybrid_cache_warming would fail on it"
        path = "devstack-up-mount/store_sales/part-00000.parquet"
        mount.members["hdfs"].write(path, io.BytesIO(b"x" * 4096))
        try:
            summary = prefetch(mount, f"/{path}", concurrency=1)  # the DAG's call: no tier, the default one
            assert (summary.tier, summary.files, summary.loaded, summary.failed) == ("SSD", 1, 1, 0)
            copies = [p for p in (cache_dir / "ssd").rglob("*") if p.is_file()]
            assert [p.name for p in copies] == ["part-00000.parquet"]
            assert copies[0].read_bytes() == b"x" * 4096

            report = mount.cache.report().to_dict()
            tiers = {t["alias"]: t for t in report["tiers"]}
            assert set(tiers) == {"MEM", "SSD"}
            assert (tiers["MEM"]["capacity_bytes"], tiers["SSD"]["capacity_bytes"]) == (64 * 2**20, 2**30)
            assert tiers["SSD"]["used_bytes"] == 4096
            assert (cache_dir / "catalog.db").is_file()

            MigrationState.for_mount(mount).failures("store_sales_to_s3", MOUNT)  # the migration DAG's state
        finally:
            mount.members["hdfs"].delete(path)
