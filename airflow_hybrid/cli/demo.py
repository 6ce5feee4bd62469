"""The demo (``make demo``): the whole hybrid-lake scenario on embedded defaults, in Airflow.

A fresh ``AIRFLOW_HOME`` (``.demo/airflow``) with the embedded SQLite metadata database, the devstack (a WebHDFS
server standing for the on-prem lake and an S3 server standing for the cloud, in a background process), the
Airflow connections, then the project's DAGs run in order with ``dag.test()``:

    hybrid_tpcds_prepare -> hybrid_cache_warming -> hybrid_query (DuckDB)
    -> hybrid_migrate_<policy> (store_sales files older than 30 days to S3) -> hybrid_query again

and prints the query answers (identical before and after the migration), the cache report, the migration
summary and where each table's files live. ``python -m airflow_hybrid.cli.demo --help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MOUNT = "onprem_union"
TABLES = ("store_sales", "item", "date_dim")
QUERY_TASKS = ("tpcds_q3", "tpcds_q42", "tpcds_q52", "tpcds_q55")


def _configure_airflow(home: Path) -> None:
    """Point Airflow at the demo's home, the project's DAGs and plugins (before Airflow is imported)."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def _banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def mount_connections(client: Any, cache_dir: Path, **ids: str) -> dict[str, dict]:
    """The devstack's connections, the mount with a two-tier cache (MEM 64 MB, SSD 1 GB) under ``cache_dir``."""
    connections = client.connections(mount_conn_id=MOUNT, **ids)
    connections[MOUNT]["extra"]["cache"] = {
        "tiers": [
            {"alias": "MEM", "uri": f"file://{cache_dir / 'mem'}", "quota": "64MB"},
            {"alias": "SSD", "uri": f"file://{cache_dir / 'ssd'}", "quota": "1GB"},
        ],
        "default_tier": "SSD",
        "catalog_url": f"sqlite:///{cache_dir / 'catalog.db'}",
        "metadata_sync_interval": 60,
        "cache_on_read": True,
    }
    return connections


def run_dag(dag_file: str, dag_id: str, conf: dict | None = None):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / dag_file))
    if bag.import_errors:
        raise SystemExit(f"{dag_file} failed to import: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise SystemExit(f"{dag_file} has no DAG {dag_id!r} (has {sorted(bag.dags)})")
    started = time.perf_counter()
    run = bag.dags[dag_id].test(run_conf=conf or {})
    print(f"  {dag_id}: {run.state} in {time.perf_counter() - started:.1f} s", flush=True)
    if run.state != "success":
        raise SystemExit(f"DAG {dag_id} ended {run.state}; see the task logs under {os.environ['AIRFLOW_HOME']}/logs")
    return run


def xcom_value(run, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        values = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).all()
    decoded = [json.loads(v) if isinstance(v, str) else v for v in values]
    return decoded[0] if len(decoded) == 1 else decoded


def query_answers(run) -> dict[str, Any]:
    return {task: xcom_value(run, task) for task in QUERY_TASKS}


def _print_answers(answers: dict[str, Any]) -> None:
    for task, summary in answers.items():
        rows = summary.get("rows") if isinstance(summary, dict) else None
        preview = summary.get("preview", []) if isinstance(summary, dict) else summary
        print(f"  {task}: {rows} rows; first: {json.dumps(preview[:2], default=str)}")


def _where_files_live() -> None:
    from airflow_hybrid.mount import HybridMount

    mount = HybridMount.from_conn_id(MOUNT)
    for table in TABLES:
        counts = []
        for member in mount.read_order:
            try:
                files = [f for f in mount.members[member].walk_files(table)]
            except FileNotFoundError:
                files = []
            counts.append(f"{member}: {len(files)} files, {sum(f.size for f in files) / 2**20:.1f} MiB")
        print(f"  {table:12s} " + "  |  ".join(counts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=str(REPO / ".demo"), help="demo directory (recreated)")
    parser.add_argument("--scale-factor", type=float, default=0.1, help="TPC-DS scale factor (0.1 ~ 100 MB)")
    parser.add_argument("--keep-devstack", action="store_true", help="leave the devstack running at the end")
    args = parser.parse_args(argv)

    home = Path(args.home).resolve()
    shutil.rmtree(home, ignore_errors=True)
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True)
    _configure_airflow(airflow_home)

    _banner(f"1. Airflow metadata database (SQLite) in {airflow_home}")
    from airflow.utils import db

    db.initdb()

    from airflow_hybrid.cli.commands import write_connections
    from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up

    state_dir = airflow_home / "hybrid" / "devstack"
    _banner("2. Devstack: WebHDFS (on-prem lake) and S3 (cloud) servers on loopback")
    client = DevStackClient(devstack_up(state_dir))
    try:
        print(f"  WebHDFS {client.webhdfs_url}   S3 {client.s3_endpoint}")
        written = write_connections(mount_connections(client, home / "cache"))
        print(f"  connections: {', '.join(written)}")
        os.environ.update(client.airflow_env())  # the same connections, for this process's tasks
        os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"] = json.dumps(mount_connections(client, home / "cache")[MOUNT])

        _banner(f"3. Sample lake: TPC-DS at scale factor {args.scale_factor} into the HDFS member (/tmp/tpcds)")
        run_dag("hybrid_tpcds_prepare.py", "hybrid_tpcds_prepare", {"scale_factor": args.scale_factor})
        _where_files_live()

        _banner("4. Cache warming: prefetch the tables into the SSD tier, pinned")
        warm = run_dag("hybrid_cache_warming.py", "hybrid_cache_warming", {"pin": True})
        print(json.dumps(xcom_value(warm, "prefetch"), indent=1, default=str))

        _banner("5. Queries (TPC-DS 3, 42, 52, 55) on the embedded DuckDB engine over hybrid://")
        before = query_answers(run_dag("hybrid_query.py", "hybrid_query"))
        _print_answers(before)

        _banner("6. Migration: ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE) on /store_sales")
        from airflow_hybrid.migration.registry import load_policies_file

        entries, errors = load_policies_file(REPO / "dags" / "hybrid_policies.yaml")
        if errors:
            raise SystemExit(f"policies file errors: {errors}")
        for entry in entries:
            run = run_dag("hybrid_ufs_migrate.py", entry.dag_id)
            print(json.dumps(xcom_value(run, "report"), indent=1, default=str))
        _where_files_live()

        _banner("7. The same queries again, now over HDFS + S3")
        after = query_answers(run_dag("hybrid_query.py", "hybrid_query"))
        _print_answers(after)
        same = all(before[t].get("preview") == after[t].get("preview") and before[t].get("rows") == after[t].get("rows")
                   for t in QUERY_TASKS)
        print(f"\n  answers identical before and after the migration: {same}")

        _banner("8. Cache report")
        from airflow_hybrid.mount import HybridMount

        print(HybridMount.from_conn_id(MOUNT).cache.report().to_text())
        if not same:
            raise SystemExit("query answers changed across the migration")
    finally:
        if not args.keep_devstack:
            devstack_down(state_dir)

    _banner("Done. Start the Airflow UI with these DAGs, connections and data:")
    print("  make airflow        (Airflow standalone on http://localhost:8080, AIRFLOW_HOME=.demo/airflow;")
    print("                       it restarts the devstack and rewrites the connections first)")


if __name__ == "__main__":
    sys.exit(main())
