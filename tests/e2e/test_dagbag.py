"""Every DAG file in dags/ imports cleanly (no import errors, no cycles) and parses quickly enough to
print; a malformed policies file gives one import error naming the entry while valid entries still load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))


def _bag(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(path))


@pytest.mark.parametrize("file_name", DAG_FILES)
def test_dag_file_imports_without_errors(file_name, capsys):
    started = time.perf_counter()
    bag = _bag(DAGS / file_name)
    elapsed = time.perf_counter() - started
    assert bag.import_errors == {}, bag.import_errors  # DagBag reports a cycle as an import error
    assert bag.dags, f"{file_name} defines no DAG"
    for dag in bag.dags.values():
        assert dag.tags and "hybrid" in dag.tags, f"{dag.dag_id} should be tagged 'hybrid'"
    with capsys.disabled():
        print(f"\n  parse {file_name}: {elapsed * 1000:.0f} ms, DAGs {sorted(bag.dags)}")


def test_expected_dags_are_there():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    expected = {"hybrid_tpcds_prepare", "hybrid_cache_warming", "hybrid_query", "hybrid_query_daily"}
    assert expected <= set(bag.dags)
    assert any(dag_id.startswith("hybrid_migrate_") for dag_id in bag.dags), sorted(bag.dags)


def test_malformed_policies_file_is_one_import_error_naming_the_entry(tmp_path, monkeypatch):
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        """
policies:
  - name: good_one
    mount: onprem_union
    path: /store_sales
    policy: "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
    schedule: "@daily"
  - name: broken_one
    mount: onprem_union
    path: /item
    policy: "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE UFS[s3]:STORE)"
    schedule: "@daily"
"""
    )
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(policies))
    bag = _bag(DAGS / "hybrid_ufs_migrate.py")
    assert len(bag.import_errors) == 1, bag.import_errors
    (message,) = bag.import_errors.values()
    assert "broken_one" in message and "column" in message, message
    assert "hybrid_migrate_good_one" in bag.dags
    assert not any("broken_one" in dag_id for dag_id in bag.dags)
