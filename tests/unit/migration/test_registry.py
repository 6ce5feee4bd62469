"""The policies file: valid entries with their defaults, one precise error per invalid entry."""

from __future__ import annotations

import textwrap

import pytest

from airflow_hybrid.migration.registry import default_policies_path, load_policies_file, parse_policies

POLICY = "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"


def _load(text: str):
    return parse_policies(textwrap.dedent(text), source="p.yaml")


def test_valid_entries_with_defaults_and_dag_ids():
    entries, errors = _load(f"""
        policies:
          - name: sales_cold
            mount: lake
            path: /tpcds/store_sales/
            policy: "{POLICY}"
            schedule: "@daily"
            min_files: 10
            min_bytes: 1GiB
            engine: emr
            emr: {{job_flow_id: j-ABC, aws_conn_id: aws_emr}}
            tags: [tpcds]
          - mount: lake
            path: web_sales
            policy: "web:ufsMigrate(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
            schedule: null
          - mount: lake
            path: catalog/2020
            policy: "{POLICY}"
            schedule: "0 3 * * *"
    """)
    assert errors == []
    sales, web, catalog = entries
    assert (sales.name, sales.dag_id, sales.mount, sales.path) == (
        "sales_cold", "hybrid_migrate_sales_cold", "lake", "tpcds/store_sales")
    assert sales.policy.to_text() == POLICY
    assert (sales.min_files, sales.min_bytes, sales.engine) == (10, 1024**3, "emr")
    assert sales.emr == {"job_flow_id": "j-ABC", "aws_conn_id": "aws_emr"}
    assert sales.asset_uri == "hybrid://lake/tpcds/store_sales"
    # the policy's own name, else <mount>_<path>
    assert (web.name, web.schedule, web.min_files, web.min_bytes, web.engine) == ("web", None, 1, 0, "local")
    assert catalog.name == "lake_catalog_2020"
    row = sales.to_dict()
    assert row["dag_id"] == "hybrid_migrate_sales_cold"
    assert row["policy"] == POLICY
    assert row["tags"] == ["tpcds"]


def test_a_plain_list_at_the_top_level_is_accepted():
    entries, errors = _load(f"""
        - {{name: a, mount: lake, path: x, policy: "{POLICY}", schedule: "@hourly"}}
    """)
    assert errors == [] and [e.name for e in entries] == ["a"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', colour: red}",
         "p.yaml: entry 0: unknown keys ['colour']; known keys: mount, path, policy, schedule, name, min_files, "
         "min_bytes, engine, executor, emr, distcp, concurrency, deferrable, poke_interval, timeout, batch_max_files, "
         "batch_max_bytes, plan_store, plan_store_conn_id, tags, description"),
        ("{mount: lake, policy: 'P'}", "p.yaml: entry 0: missing path, schedule"),
        ("{mount: lake, path: x, policy: 'ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)', "
         "schedule: '@daily'}",
         "p.yaml: entry 0: policy: expected ')' but found ',' at column 24\n"
         "      ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)\n"
         "                             ^"),
        ("{mount: lake, path: ../etc, policy: 'P', schedule: '@daily'}",
         "p.yaml: entry 0: path: path '../etc' escapes its root with '..'"),
        ("{mount: '', path: x, policy: 'P', schedule: '@daily'}",
         "p.yaml: entry 0: mount: expected a non-empty string, got ''"),
        ("{mount: lake, path: x, policy: 'P', schedule: 5}",
         "p.yaml: entry 0: schedule: expected a cron expression, a preset such as '@daily', or null; got 5"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', min_files: -1}",
         "p.yaml: entry 0: min_files: expected an integer >= 0, got -1"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', min_bytes: lots}",
         "p.yaml: entry 0: min_bytes: 'lots' is not a size such as 1048576, '512MiB' or '1GB'"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', engine: spark}",
         "p.yaml: entry 0: engine: expected one of local, emr, distcp, got 'spark'"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', engine: emr, executor: emr}",
         "p.yaml: entry 0: engine and executor: give one of them (executor is another name for engine)"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', executor: emr}",
         "p.yaml: entry 0: emr.job_flow_id: required with executor: emr (the EMR cluster to run S3DistCp on)"),
        ("{name: 'my policy', mount: lake, path: x, policy: 'P', schedule: '@daily'}",
         "p.yaml: entry 0 ('my policy'): name: 'my policy' may only contain letters, digits, '_', '.' and '-' "
         "(it becomes part of the DAG id)"),
        ("{mount: lake, path: x, policy: 'P', schedule: '@daily', deferrable: 'maybe'}",
         "p.yaml: entry 0: deferrable: expected true or false, got 'maybe'"),
        ("[1, 2]", "p.yaml: entry 0: expected a mapping with mount, path, policy, schedule, got list"),
    ],
)
def test_invalid_entries_are_reported_with_what_and_where(entry, message):
    entry = entry.replace("'P'", repr(POLICY).replace('"', "'"))
    entries, errors = _load(f"policies:\n  - {entry}\n")
    assert entries == []
    assert len(errors) == 1
    assert errors[0].startswith(message), errors[0]


def test_valid_entries_survive_invalid_neighbours_and_duplicates_are_named():
    entries, errors = _load(f"""
        - {{name: a, mount: lake, path: x, policy: "{POLICY}", schedule: "@daily"}}
        - {{name: b, mount: lake, path: y, policy: "nope", schedule: "@daily"}}
        - {{name: a, mount: lake, path: z, policy: "{POLICY}", schedule: "@daily"}}
        - {{name: c, mount: lake, path: z, policy: "{POLICY}", schedule: "@daily"}}
    """)
    assert [e.name for e in entries] == ["a", "c"]
    assert errors[0].startswith("p.yaml: entry 1 ('b'): policy: ")
    assert errors[1] == ("p.yaml: entry 2 ('a'): name 'a' is already used by entry 0; give each entry a distinct "
                         "'name'")


def test_yaml_errors_name_the_line():
    entries, errors = _load("policies:\n  - {mount: lake\n")
    assert entries == []
    assert errors[0].startswith("p.yaml: not valid YAML at line 3")


def test_top_level_must_be_a_list_or_policies():
    assert _load("other: 1\n") == ([], ["p.yaml: unknown top-level keys ['other']; expected a list or 'policies:'"])
    assert _load("42\n") == ([], ["p.yaml: expected a list of policies, got int"])
    assert _load("") == ([], [])


def test_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert load_policies_file(missing) == ([], [f"policies file {missing} does not exist"])


def test_default_path_from_variable_then_dags_folder(tmp_path, monkeypatch):
    file = tmp_path / "mine.yaml"
    file.write_text(f"- {{name: v, mount: lake, path: x, policy: '{POLICY}', schedule: '@daily'}}\n")
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(file))
    assert default_policies_path() == file
    entries, errors = load_policies_file()
    assert errors == [] and [e.name for e in entries] == ["v"]

    monkeypatch.delenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    assert default_policies_path() == tmp_path / "hybrid_policies.yaml"


def test_a_distcp_entry_passes_its_section_to_the_migrate_operator():
    from airflow_hybrid.migration.dag_factory import migration_dag

    entries, errors = _load(f"""
        - name: bulk
          mount: lake
          path: /warehouse
          policy: "{POLICY}"
          schedule: "@daily"
          executor: distcp
          distcp: {{command: [sudo, -u, etl, hadoop, distcp], args: [-m, "50"], properties: {{mapreduce.job.queuename: etl}}}}
    """)
    assert errors == [] and entries[0].engine == "distcp"
    migrate = migration_dag(entries[0]).get_task("migrate")
    assert migrate.partial_kwargs["engine"] == "distcp"
    assert migrate.partial_kwargs["distcp_command"] == ["sudo", "-u", "etl", "hadoop", "distcp"]
    assert migrate.partial_kwargs["distcp_args"] == ["-m", "50"]
    assert migrate.partial_kwargs["distcp_properties"] == {"mapreduce.job.queuename": "etl"}
    _, bad = _load(f"""
        - {{mount: lake, path: x, policy: "{POLICY}", schedule: "@daily", executor: distcp, distcp: {{jobs: 4}}}}
    """)
    assert bad == ["p.yaml: entry 0: distcp: unknown keys ['jobs']; known keys: command, args, env, properties, "
                   "s3_scheme, s3a_from_connection, list_prefix, list_conn_id"]
