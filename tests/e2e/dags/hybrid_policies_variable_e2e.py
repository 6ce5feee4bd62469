"""Test DAG: a task that loads the policies file the ``hybrid_policies_file`` Variable names (the metadata
database holds it; the e2e test writes it) and reports what it read and which warnings that emitted."""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG("hybrid_policies_variable_e2e", schedule=None, catchup=False, tags=["hybrid", "test"]):

    @task
    def load() -> dict:
        import warnings

        from airflow.sdk.execution_time import task_runner

        from airflow_hybrid.migration import registry

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = registry.default_policies_path()
            entries, errors = registry.load_policies_file()
        return {
            "supervised": getattr(task_runner, "SUPERVISOR_COMMS", None) is not None,
            "path": str(path),
            "entries": [e.name for e in entries],
            "errors": errors,
            "warnings": [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught],
        }

    load()
