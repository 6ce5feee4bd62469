"""Implementations of ``airflow hybrid ...`` (loaded lazily by the CLI parser)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _server_context() -> None:
    """Read connections from the metadata database too, as the API server and scheduler do.

    The Task SDK looks up connections by process context; a CLI command is a server-side process.
    """
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")


def default_state_dir() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "hybrid" / "devstack"


def write_connections(connections: dict[str, dict[str, Any]], keep: tuple[str, ...] = ()) -> list[str]:
    """Create or replace Airflow connections in the metadata database; return the ids written.

    Connections named in ``keep`` are left as they are when they already exist.
    """
    from airflow.models import Connection
    from airflow.utils.session import create_session

    written = []
    with create_session() as session:
        for conn_id, fields in connections.items():
            if conn_id in keep and session.query(Connection).filter(Connection.conn_id == conn_id).count():
                continue
            written.append(conn_id)
            fields = dict(fields)
            extra = fields.pop("extra", None)
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.add(
                Connection(
                    conn_id=conn_id, extra=json.dumps(extra) if isinstance(extra, dict) else extra, **fields
                )
            )
    return written


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def devstack_up(args) -> None:
    from airflow_hybrid.devstack import control

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    shaping = None
    if args.wan:
        latency_ms, mbps = (float(x) for x in args.wan.split(","))
        shaping = {"all": {"latency_ms": latency_ms, "bandwidth": mbps * 1e6}}
    status = control.devstack_up(state_dir, shaping=shaping, hdfs=args.hdfs)
    client = control.DevStackClient(status)
    hdfs = "Apache Hadoop HDFS" if status.get("hdfs") == "hadoop" else "WebHDFS"
    print(f"devstack up: {hdfs} {client.webhdfs_url}  S3 {client.s3_endpoint}  data {client.data_dir}")
    if not args.no_connections:
        # the mount connection only names the member connections: an existing one (with its cache and
        # catalog settings) is kept; the member connections carry this run's ports and are rewritten
        ids = write_connections(client.connections(mount_conn_id=args.mount), keep=(args.mount,))
        print(f"connections written: {', '.join(ids)}")


def devstack_down(args) -> None:
    from airflow_hybrid.devstack import control

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    stopped = control.devstack_down(state_dir)
    print("devstack stopped" if stopped else "devstack was not running")


def devstack_status(args) -> None:
    from airflow_hybrid.devstack import control

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    status = control.devstack_status(state_dir)
    text = "\n".join(f"{k}: {v}" for k, v in status.items() if k != "connections")
    _print(status, args.json, text)


def _mount_conn_ids(selected: str | None) -> list[str]:
    if selected:
        return [selected]
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        return [c.conn_id for c in session.query(Connection).filter(Connection.conn_type == "hybrid_mount")]


def cache_report(args) -> None:
    _server_context()
    from airflow_hybrid.mount import HybridMount

    reports = {}
    for conn_id in _mount_conn_ids(args.mount):
        mount = HybridMount.from_conn_id(conn_id)
        if mount.cache is None:
            print(f"{conn_id}: no cache configured")
            continue
        reports[conn_id] = mount.cache.report()
    if args.json:
        print(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=2, default=str))
    else:
        for conn_id, report in reports.items():
            print(f"== mount {conn_id} ==\n{report.to_text()}")


def policy_list(args) -> None:
    _server_context()
    from airflow_hybrid.policy.registry import load_policies_file

    entries, errors = load_policies_file(args.policies)
    rows = [e.to_dict() for e in entries]
    text = "\n".join(f"{e.dag_id}: {e.mount}:{e.path}  {e.policy}  schedule={e.schedule}" for e in entries)
    text += "".join(f"\nINVALID {err}" for err in errors)
    _print({"policies": rows, "errors": errors}, args.json, text)


def policy_status(args) -> None:
    _server_context()
    from airflow_hybrid.policy.status import policy_status_rows

    rows = policy_status_rows(args.policies)
    text = "\n".join(
        (
            f"{r['name']}: {r['mount']}:{r['path']} ERROR {r['error']}"
            if r.get("error")
            else f"{r['name']}: {r['mount']}:{r['path']} pending {r['pending_files']} files/{r['pending_bytes']} B, "
            f"moved {r['moved_files']}, failed {r['failed_files']}, last run {r['last_run']}"
        )
        + "".join(f"\n    {f.get('status', 'failed')} {f['path']}: {f['reason']}" for f in r.get("failures", []))
        for r in rows
    )
    _print(rows, args.json, text)
