"""Definition of ``airflow hybrid ...``: devstack, cache report, policy status."""

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
)


def get_hybrid_cli_commands() -> list[GroupCommand]:
    """Provider ``cli`` entry: the ``airflow hybrid`` group."""
    return [GroupCommand(name="hybrid", help="Hybrid data lake: devstack, cache, policies", subcommands=HYBRID_COMMANDS)]
