"""Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""

from __future__ import annotations


def get_provider_info() -> dict:
    from airflow_hybrid.hooks.uri_spelling import spell_uri_scheme_with_dash

    spell_uri_scheme_with_dash()  # every Airflow process discovers providers: no RFC 3986 warning for our type
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
        "triggers": [
            {
                "integration-name": "Hybrid mount",
                "python-modules": ["airflow_hybrid.triggers.migrate", "airflow_hybrid.triggers.freshness"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_hybrid.hooks.hybrid_mount.HybridMountHook",
                "hook-name": "Hybrid Mount (HDFS + S3 union)",
                "connection-type": "hybrid_mount",
                # The form's own fields; Airflow 3 stores each under its plain name in the extras, the names
                # parse_mount_options reads (any other mount option goes in the Extra JSON).
                "conn-fields": {
                    "members": {
                        "label": "Members",
                        "description": 'Member name -> {"uri", "conn_id"}, e.g. {"hdfs": {"uri": '
                        '"hdfs:///data/lake", "conn_id": "webhdfs_default"}, "s3": {"uri": '
                        '"s3://my-bucket/lake", "conn_id": "aws_default"}}. conn_id defaults to '
                        "webhdfs_default / aws_default.",
                        "schema": {"type": ["object", "null"]},
                    },
                    "priority.read": {
                        "label": "Read priority",
                        "description": "Members in the order a read looks for a path, comma-separated, "
                        "e.g. s3,hdfs (every member once). Default: the members in their order.",
                        "schema": {"type": ["string", "null"], "examples": ["s3,hdfs", "hdfs,s3"]},
                    },
                    "collection.create": {
                        "label": "Create new files in",
                        "description": "Member(s) new files and directories are written to, e.g. s3. "
                        "Default: the first member of the read priority.",
                        "schema": {"type": ["string", "null"], "examples": ["s3", "hdfs"]},
                    },
                    "cache": {
                        "label": "Cache",
                        "description": 'Tiered cache, e.g. {"tiers": [{"alias": "SSD", "uri": '
                        '"file:///mnt/ssd/hybrid", "quota": "200GB", "high_watermark": 0.95, '
                        '"low_watermark": 0.7}], "metadata_sync_interval": "1m"}. Empty: no cache.',
                        "schema": {"type": ["object", "null"]},
                    },
                    "catalog_url": {
                        "label": "Cache catalog URL",
                        "description": "SQLAlchemy URL of the cache catalog shared by all workers, e.g. "
                        "postgresql+psycopg2://airflow@db-host/airflow. Default: "
                        "sqlite:///$AIRFLOW_HOME/hybrid/catalog.db (one machine only).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "mount_options": {
                        "label": "Alluxio mount options",
                        "description": "Alluxio's union mount options instead of (or besides) the fields "
                        "above, key=value per line: alluxio-union.hdfs.uri=hdfs://namenode:8020/data/lake, "
                        "alluxio-union.s3.uri=s3://my-bucket/lake, alluxio-union.priority.read=s3,hdfs, "
                        "alluxio-union.collection.create=s3, alluxio-union.hdfs.option.conn_id=webhdfs_default",
                        "schema": {"type": ["string", "null"], "format": "multiline"},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "password"],
                    "relabeling": {},
                    "placeholders": {
                        "extra": '{\n "members": {\n  "hdfs": {"uri": "hdfs:///data/lake", "conn_id": '
                        '"webhdfs_default"},\n  "s3": {"uri": "s3://my-bucket/lake", "conn_id": '
                        '"aws_default"}\n },\n "priority.read": "s3,hdfs",\n "collection.create": "s3",\n '
                        '"cache": {"tiers": [{"alias": "SSD", "uri": "file:///var/cache/hybrid", '
                        '"quota": "100GB"}]}\n}',
                    },
                },
            }
        ],
        "filesystems": ["airflow_hybrid.mount.filesystem"],
        "cli": ["airflow_hybrid.cli.definition.get_hybrid_cli_commands"],
        "plugins": [{"name": "hybrid", "plugin-class": "airflow_hybrid.plugins.plugin.HybridLakePlugin"}],
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
