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
        "operators": [
            {
                "integration-name": "Hybrid mount",
                "python-modules": [
                    "airflow_hybrid.operators.cache",
                    "airflow_hybrid.operators.migrate",
                    "airflow_hybrid.operators.query",
                ],
            }
        ],
        "sensors": [{"integration-name": "Hybrid mount", "python-modules": ["airflow_hybrid.sensors.migrate"]}],
        "triggers": [{"integration-name": "Hybrid mount", "python-modules": ["airflow_hybrid.triggers.migrate"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_hybrid.hooks.hybrid_mount.HybridMountHook",
                "connection-type": "hybrid_mount",
            }
        ],
        "filesystems": ["airflow_hybrid.mount.filesystem"],
        "cli": ["airflow_hybrid.cli.definition.get_hybrid_cli_commands"],
        "config": {
            "hybrid": {
                "description": "Settings of the airflow-hybrid provider.",
                "options": {
                    "plan_store": {
                        "description": "URI of the store that keeps migration plans (a local directory, or "
                        "s3://bucket/prefix so workers on other hosts read them). Default: "
                        "$AIRFLOW_HOME/hybrid/plans.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/airflow-hybrid/plans",
                        "default": "",
                    },
                    "plan_store_conn_id": {
                        "description": "Airflow connection used to reach plan_store.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": "",
                    },
                },
            }
        },
    }
