"""Implementations of ``airflow hybrid ...`` (loaded lazily by the CLI parser)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from airflow_hybrid.settings import hybrid_home


def _server_context() -> None:
    """Read connections from the metadata database too, as the API server and scheduler do.

    The Task SDK looks up connections by process context; a CLI command is a server-side process.
    """
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")


def default_state_dir() -> Path:
    return hybrid_home("devstack")


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


def _connection_extra(conn_id: str) -> dict[str, Any]:
    """The extras of connection ``conn_id`` in the metadata database (``{}`` when absent or not JSON)."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        return (conn.extra_dejson or {}) if conn is not None else {}


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
        # catalog settings) is kept; the member connections carry this run's ports and are rewritten. A new
        # mount gets a cache under the stack's data directory, which the shipped DAGs need.
        connections = client.connections(mount_conn_id=args.mount, cache_dir=client.data_dir / "cache")
        ids = write_connections(connections, keep=(args.mount,))
        print(f"connections written: {', '.join(ids)}")
        if args.mount not in ids:
            extra = _connection_extra(args.mount)
            cache = "" if extra.get("cache") else (
                "; it has no 'cache' section, so hybrid_cache_warming fails on it: delete it "
                f"(airflow connections delete {args.mount}) and run devstack up again for one with a cache"
            )
            print(f"kept the existing mount connection {args.mount}{cache}")


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


def _env_mount_conn_ids() -> list[str]:
    """``hybrid_mount`` connections defined by ``AIRFLOW_CONN_<ID>`` environment variables (JSON or URI)."""
    found = []
    for key, value in os.environ.items():
        if not key.startswith("AIRFLOW_CONN_") or not value.strip():
            continue
        try:
            conn_type = json.loads(value).get("conn_type") if value.lstrip().startswith("{") else value.split(":", 1)[0]
        except (ValueError, AttributeError):
            continue
        if str(conn_type).replace("-", "_") == "hybrid_mount":
            found.append(key[len("AIRFLOW_CONN_") :].lower())
    return found


def _db_mount_conn_ids() -> list[str]:
    """``hybrid_mount`` connections in the metadata database."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        return [c.conn_id for c in session.query(Connection).filter(Connection.conn_type == "hybrid_mount")]


def _mount_conn_ids(selected: str | None) -> list[str]:
    """The mount named by ``--mount``, else every ``hybrid_mount`` connection (metadata database and environment)."""
    if selected:
        return [selected]
    return list(dict.fromkeys([*_db_mount_conn_ids(), *_env_mount_conn_ids()]))


def cache_report(args) -> None:
    """Report every mount's cache; a broken mount is reported with its error and the exit status is 1."""
    _server_context()
    from airflow_hybrid.cache.report import MountFailure, describe_error
    from airflow_hybrid.mount import HybridMount

    results: dict[str, Any] = {}
    for conn_id in _mount_conn_ids(args.mount):
        try:
            with HybridMount.from_conn_id(conn_id) as mount:
                results[conn_id] = None if mount.cache is None else mount.cache.report()
        except Exception as err:  # noqa: BLE001 - one broken mount must not hide the others' reports
            results[conn_id] = MountFailure(conn_id, describe_error(err, conn_id))
    failed = [conn_id for conn_id, result in results.items() if isinstance(result, MountFailure)]
    if args.json:
        document = {
            conn_id: {"mount": conn_id, "cache": None} if result is None else result.to_dict()
            for conn_id, result in results.items()
        }
        print(json.dumps(document, indent=2, default=str))
    else:
        if not results:
            print("no hybrid_mount connections")
        for conn_id, result in results.items():
            if result is None:
                print(f"{conn_id}: no cache configured")
            elif isinstance(result, MountFailure):
                print(f"error: {result.to_text()}", file=sys.stderr)
            else:
                print(f"== mount {conn_id} ==\n{result.to_text()}")
    if failed:
        sys.stdout.flush()
        raise SystemExit(1)


def policy_list(args) -> None:
    _server_context()
    from airflow_hybrid.migration.registry import load_policies_file

    entries, errors = load_policies_file(args.policies)
    rows = [e.to_dict() for e in entries]
    text = "\n".join(f"{e.dag_id}: {e.mount}:{e.path}  {e.policy}  schedule={e.schedule}" for e in entries)
    text += "".join(f"\nINVALID {err}" for err in errors)
    _print({"policies": rows, "errors": errors}, args.json, text)


def policy_status(args) -> None:
    """Per policy: pending (from the migration state; ``--count-pending``: listed from the mount now), moved,
    failed with reasons, the last run; ``--json`` prints the rows as they are."""
    _server_context()
    from airflow_hybrid.migration.status import policy_status_rows, row_text

    rows = policy_status_rows(args.policies, count_pending=bool(getattr(args, "count_pending", False)))
    _print(rows, args.json, "\n".join(row_text(row) for row in rows))


def gateway(args) -> None:
    """``airflow hybrid gateway``: serve the mounts as S3 buckets until interrupted."""
    _server_context()
    from airflow_hybrid.gateway.config import GatewayConfig
    from airflow_hybrid.gateway.server import serve

    options: dict[str, Any] = {"host": args.host, "port": args.port, "ssl_certfile": args.ssl_certfile,
                               "ssl_keyfile": args.ssl_keyfile,
                               "spool_dir": Path(args.spool_dir) if args.spool_dir else None}
    if args.anonymous:
        options["anonymous"] = args.anonymous
    config = GatewayConfig.from_connection(args.mount, args.auth_conn, **options)
    scheme = "https" if config.tls else "http"
    print(f"gateway: {', '.join(args.mount)} on {scheme}://{config.host}:{config.port} "
          f"({len(config.keys)} access key(s), anonymous {config.anonymous})", flush=True)
    serve(config)
