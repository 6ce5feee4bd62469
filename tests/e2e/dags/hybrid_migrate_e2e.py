"""Test DAGs: one migration DAG per entry of the policies file named by the ``hybrid_policies_file``
Variable (the e2e test writes it), built by the provider's DAG factory."""

from __future__ import annotations

from airflow_hybrid.migration.dag_factory import migration_dags

globals().update(migration_dags())
