"""
Hybrid lake: policy-driven migration, one DAG per policy (Alluxio's ``ufsMigrate``).

Policies come from a YAML file: the Airflow Variable ``hybrid_policies_file`` names it, else
``hybrid_policies.yaml`` next to this file. Each entry, e.g.::

    - mount: onprem_union
      path: /store_sales
      policy: "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
      schedule: "@daily"

becomes a DAG ``hybrid_migrate_<name>``: a deferrable ``UfsMigrateSensor`` waits until the policy selects
files and writes a plan -> ``UfsMigrateOperator`` mapped over the plan's batches (copy, verify CRC32C end
to end, re-check the source, only then remove it from HDFS) -> a report. Its outlet is the Asset
``hybrid://<mount>/<path>``. A malformed entry is reported as this file's import error, naming the entry and
the problem; the valid entries still load.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_hybrid.migration.dag_factory import migration_dag
from airflow_hybrid.migration.registry import load_policies_file


class InvalidPoliciesDag(DAG):
    """Stands for the invalid entries: Airflow validates each DAG of a file separately, so this one's
    failure becomes the file's import error (shown in the UI) while the valid entries' DAGs load."""

    policy_errors: tuple[str, ...] = ()

    def validate(self) -> None:
        raise ValueError("invalid migration policies: " + "; ".join(self.policy_errors))


entries, errors = load_policies_file()
globals().update({entry.dag_id: migration_dag(entry) for entry in entries})
if errors:
    invalid = InvalidPoliciesDag("hybrid_migrate_invalid_policies", schedule=None, tags=["hybrid"])
    invalid.policy_errors = tuple(errors)
