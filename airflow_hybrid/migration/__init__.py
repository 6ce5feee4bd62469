"""Policy migration: plan (planner), move (migrator: copy, verify, re-check, remove), record (state, claims),
run as Airflow tasks (execution, registry, dag_factory, status) and bulk engines (distcp, s3distcp, manifest)."""
