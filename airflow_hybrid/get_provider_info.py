"""Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-hybrid",
        "name": "Hybrid data lake",
        "description": "Union mount of HDFS and S3, tiered cache, and policy-driven HDFS to S3 migration.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Hybrid mount",
                "external-doc-url": "https://github.com/airflow-hybrid/airflow-hybrid",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Hybrid mount",
                "python-modules": ["airflow_hybrid.hooks.hybrid_mount"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_hybrid.hooks.hybrid_mount.HybridMountHook",
                "connection-type": "hybrid_mount",
            }
        ],
        "filesystems": ["airflow_hybrid.fs"],
        "cli": ["airflow_hybrid.cli.definition.get_hybrid_cli_commands"],
    }
