"""Definition of ``airflow hybrid ...``: devstack, cache report, policy status, the S3 gateway."""

from __future__ import annotations

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

_COMMANDS = "airflow_hybrid.cli.commands"

ARG_STATE_DIR = Arg(("--state-dir",), help="Where the devstack keeps its state (default: $AIRFLOW_HOME/hybrid/devstack)")
ARG_MOUNT = Arg(("--mount",), help="hybrid_mount connection id", default="onprem_union")
ARG_MOUNTS = Arg(("--mount",), help="hybrid_mount connection id (default: every hybrid_mount connection)")
ARG_JSON = Arg(("--json",), help="Print JSON instead of text", action="store_true")
ARG_NO_CONNECTIONS = Arg(("--no-connections",), help="Do not write the Airflow connections", action="store_true")
ARG_HDFS = Arg(
    ("--hdfs",),
    help="HDFS server: 'devstack' (our WebHDFS server, no Java) or 'hadoop' (Apache Hadoop 3.5; Java 17, Maven)",
    choices=("devstack", "hadoop"),
    default="devstack",
)
ARG_WAN = Arg(("--wan",), help="Shape the link like a WAN: 'LATENCY_MS,MBPS' (e.g. 20,50)")
ARG_POLICIES = Arg(("--policies",), help="Policies file (default: the hybrid_policies_file Variable or dags/)")
ARG_COUNT_PENDING = Arg(
    ("--count-pending",),
    help="Count the pending files by listing the mount now (default: as of the last plan, from the migration state)",
    action="store_true",
)

ARG_GATEWAY_MOUNT = Arg(
    ("--mount",),
    help="hybrid_mount connection id served as a bucket; BUCKET=CONN_ID names the bucket (repeat for more)",
    action="append",
    required=True,
)
ARG_GATEWAY_HOST = Arg(("--host",), help="Address to listen on (default: 127.0.0.1, this host only)",
                       default="127.0.0.1")
ARG_GATEWAY_PORT = Arg(("--port",), help="Port to listen on (default: 9000)", type=int, default=9000)
ARG_GATEWAY_AUTH = Arg(
    ("--auth-conn",),
    help="Airflow connection holding the access keys (login = access key id, password = secret; extras "
    "read_only (default true), keys, anonymous, region). Without it only anonymous access, if enabled, works",
)
ARG_GATEWAY_ANONYMOUS = Arg(("--anonymous",), help="Unsigned requests: off (default), read, or write",
                            choices=("off", "read", "write"))
ARG_GATEWAY_SPOOL = Arg(("--spool-dir",), help="Where uploads are spooled before they reach a mount "
                        "(default: a private temporary directory)")
ARG_GATEWAY_CERT = Arg(("--ssl-certfile",), help="TLS certificate (PEM); serves HTTPS with --ssl-keyfile")
ARG_GATEWAY_KEY = Arg(("--ssl-keyfile",), help="TLS private key (PEM)")

DEVSTACK_COMMANDS = (
    ActionCommand(
        name="up",
        help="Start the local WebHDFS + S3 stack in the background and write its Airflow connections",
        func=lazy_load_command(f"{_COMMANDS}.devstack_up"),
        args=(ARG_STATE_DIR, ARG_MOUNT, ARG_NO_CONNECTIONS, ARG_WAN, ARG_HDFS),
    ),
    ActionCommand(
        name="down",
        help="Stop the local stack",
        func=lazy_load_command(f"{_COMMANDS}.devstack_down"),
        args=(ARG_STATE_DIR,),
    ),
    ActionCommand(
        name="status",
        help="Show the local stack's endpoints and request counters",
        func=lazy_load_command(f"{_COMMANDS}.devstack_status"),
        args=(ARG_STATE_DIR, ARG_JSON),
    ),
)

POLICY_COMMANDS = (
    ActionCommand(
        name="list",
        help="List the migration policies declared in the policies file",
        func=lazy_load_command(f"{_COMMANDS}.policy_list"),
        args=(ARG_POLICIES, ARG_JSON),
    ),
    ActionCommand(
        name="status",
        help="Per policy and path: pending files/bytes, moved, failed with reasons, last run",
        func=lazy_load_command(f"{_COMMANDS}.policy_status"),
        args=(ARG_POLICIES, ARG_JSON, ARG_COUNT_PENDING),
    ),
)

HYBRID_COMMANDS = (
    GroupCommand(name="devstack", help="Local WebHDFS + S3 stack for demos and tests", subcommands=DEVSTACK_COMMANDS),
    ActionCommand(
        name="report",
        help="Cache report per tier (capacity, used, pinned, files, hit ratio), like Alluxio's fsadmin report",
        func=lazy_load_command(f"{_COMMANDS}.cache_report"),
        args=(ARG_MOUNTS, ARG_JSON),
    ),
    GroupCommand(name="policy", help="Migration policies", subcommands=POLICY_COMMANDS),
    ActionCommand(
        name="gateway",
        help="Serve mounts as S3 buckets (SigV4 keys from --auth-conn) for engines outside Airflow",
        func=lazy_load_command(f"{_COMMANDS}.gateway"),
        args=(ARG_GATEWAY_MOUNT, ARG_GATEWAY_HOST, ARG_GATEWAY_PORT, ARG_GATEWAY_AUTH, ARG_GATEWAY_ANONYMOUS,
              ARG_GATEWAY_SPOOL, ARG_GATEWAY_CERT, ARG_GATEWAY_KEY),
    ),
)


def get_hybrid_cli_commands() -> list[GroupCommand]:
    """Provider ``cli`` entry: the ``airflow hybrid`` group."""
    return [GroupCommand(name="hybrid", help="Hybrid data lake: devstack, cache, policies, S3 gateway", subcommands=HYBRID_COMMANDS)]
