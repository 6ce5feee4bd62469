"""No secret of a connection leaks: recognisable secrets are planted in the connections, the DAGs that use them
run, and everything a user, an operator or a log shipper can see is searched for them.

Planted: an AWS access key id and secret key (the ``aws_default`` connection of the devstack's S3 server, which
accepts any key), a WebHDFS password (``webhdfs_default``; sent as HTTP basic auth, which the server ignores),
the password of the cache catalog and migration state database in ``catalog_url`` (a PostgreSQL cluster of this
test's own whose owner has that password), and a Kerberos principal and keytab path in the extras of a WebHDFS
connection used by a second mount (shown by the UI and the CLI; never logged in to, there is no KDC here).

Run: a cache-warming + query DAG (tests/e2e/dags/hybrid_leak_e2e.py: prefetch into a local tier and an S3 tier,
DuckDB over ``hybrid://``, cache report), and a policy migration DAG (plan -> migrate -> report); then once more
a migration whose outcomes cannot be recorded (the state database refuses connections).

Searched, for each secret raw, percent-encoded and inside an HTTP basic-auth header: every log record (all
levels of ``airflow_hybrid``, INFO and up of the rest, with tracebacks), the process's stdout and stderr, the
files of Airflow's log folders, every XCom of the runs, the rendered template fields, the deferred sensor's
trigger arguments, the OpenLineage facets of the operators that emit them, the output of ``airflow hybrid
report`` / ``policy list`` / ``policy status`` / ``devstack status`` (text and JSON, in process and one real
``airflow`` CLI process), and the UI plugin's JSON endpoints and page.
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_hybrid.devstack.processes import free_ports
from tests.integration.migrate_support import make_dataset, policy_dag
from tests.services import unavailable

MOUNT = "leak_lake"
KERBEROS_MOUNT = "leak_kerberos_lake"
WEBHDFS_LOGIN = "hybrid"
SECRETS = {
    "aws access key id": "AKIAHYBRIDLEAK7Q2XZ9",
    "aws secret access key": "LeakAwsSecret/9f3Kq+HybridTestOnly00000x",
    "webhdfs password": "LeakWebhdfsPw-4c8e-hybrid",
    "catalog password": "LeakCatalogPw-71d2-hybrid",
    "kerberos principal": "leaktest-etl-5e0a/gateway.leak.example@LEAK.EXAMPLE.COM",
    "kerberos keytab": "/etc/security/keytabs/leaktest-etl-3b9d.keytab",
}


def forms(name: str, secret: str) -> set[str]:
    """How a secret could appear: raw, percent-encoded (URLs, form bodies), in a basic-auth header."""
    found = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    if name == "webhdfs password":
        found.add(base64.b64encode(f"{WEBHDFS_LOGIN}:{secret}".encode()).decode())
    if name == "kerberos principal":
        found.add(secret.partition("/")[0])  # its primary alone
    return found


def leaks(sources: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(source, secret name, excerpt)`` of every hit."""
    hits = []
    for source, text in sources.items():
        for name, secret in SECRETS.items():
            for form in forms(name, secret):
                start = text.find(form)
                if start >= 0:
                    hits.append((source, name, text[max(0, start - 120) : start + len(form) + 40]))
    return hits


# -- a PostgreSQL cluster whose owner has the planted password -----------------------------------------------
def _pg_bin(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
            return str(candidate)
        unavailable(f"PostgreSQL's {tool} is not installed")
    return found


@pytest.fixture(scope="module")
def catalog_url():
    """``postgresql://leak_owner:<catalog password>@127.0.0.1:<port>/postgres`` on a cluster of this module's."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # postgres refuses root
    base = Path(tempfile.mkdtemp(prefix="hybrid-leak-pg-"))
    data, pwfile = base / "data", base / "pw"
    pwfile.write_text(SECRETS["catalog password"])
    if as_postgres:
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    (port,) = free_ports(1, "127.0.0.1")

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_postgres, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode:
            shutil.rmtree(base, ignore_errors=True)
            unavailable(
                f"a PostgreSQL cluster for the test could not be set up: {cmd[0]}: {done.stderr[-2000:]}"
            )

    run(
        _pg_bin("initdb"),
        "-D",
        str(data),
        "-U",
        "leak_owner",
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--no-instructions",
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg2://leak_owner:{SECRETS['catalog password']}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


# -- the planted connections -------------------------------------------------------------------------------
@pytest.fixture
def planted(airflow_db, airflow_connections, catalog_url, tmp_path, monkeypatch):
    """The devstack's connections with the secrets planted, in the environment and the metadata database."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    from airflow_hybrid.cli.commands import write_connections

    connections = copy.deepcopy(airflow_connections)
    webhdfs = connections["webhdfs_default"]
    webhdfs.update(login=WEBHDFS_LOGIN, password=SECRETS["webhdfs password"])
    aws = connections["aws_default"]
    aws.update(login=SECRETS["aws access key id"], password=SECRETS["aws secret access key"])
    extra = copy.deepcopy(connections["onprem_union"]["extra"])
    extra["cache"] = {
        "tiers": [
            {"alias": "MEM", "uri": f"file://{tmp_path}/tier-mem", "quota": "4MB"},
            {"alias": "S3", "uri": "s3://hybrid-lake/leak-cache", "conn_id": "aws_default", "quota": "8MB"},
        ],
    }
    extra["catalog_url"] = catalog_url  # the cache catalog and the migration state database
    kerberized = {
        **copy.deepcopy(webhdfs),
        "password": None,
        "extra": {
            "kerberos_principal": SECRETS["kerberos principal"],
            "kerberos_keytab": SECRETS["kerberos keytab"],
        },
    }
    kerberos_extra = {
        "members": {"hdfs": {"uri": "hdfs:///tmp/leak-kerberos", "conn_id": "leak_webhdfs_kerberos"}},
        "cache": {
            "tiers": [{"alias": "SSD", "uri": f"file://{tmp_path}/tier-krb", "quota": "1MB"}],
            "catalog_url": f"sqlite:///{tmp_path}/krb-catalog.db",
        },
    }
    connections.update(
        {
            MOUNT: {"conn_type": "hybrid_mount", "extra": extra},
            "leak_webhdfs_kerberos": kerberized,
            KERBEROS_MOUNT: {"conn_type": "hybrid_mount", "extra": kerberos_extra},
        }
    )
    del connections["onprem_union"]
    for conn_id, value in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    ids = write_connections(connections)
    yield connections
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(ids)).delete(synchronize_session=False)


@pytest.fixture
def leak_lake(planted):
    from airflow_hybrid.mount import HybridMount

    mount = HybridMount.from_conn_id(MOUNT)
    if mount.exists("leak-e2e"):
        mount.delete("leak-e2e", recursive=True)
    for i in range(3):  # two parts on-prem (HDFS), one migrated (S3)
        buffer = io.BytesIO()
        pq.write_table(pa.table({"v": list(range(i * 100, i * 100 + 100))}), buffer)
        member = mount.members["hdfs" if i < 2 else "s3"]
        member.write(f"leak-e2e/sales/part-{i:05d}.parquet", io.BytesIO(buffer.getvalue()))
    yield mount
    mount.close()


class Seen:
    """What the runs left where someone can see it."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
        self.caplog, self.capfd = caplog, capfd
        self.sources: dict[str, str] = {}
        self.triggers: list[str] = []
        caplog.set_level(logging.INFO)
        caplog.set_level(logging.DEBUG, logger="airflow_hybrid")

    def add(self, source: str, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        self.sources[source] = self.sources.get(source, "") + text + "\n"

    def run(self, dag, label: str):
        run = dag.test()
        self.add(f"{label}: xcom", _xcoms(run))
        self.add(f"{label}: rendered template fields", _rendered_fields(run))
        self.add(
            f"{label}: task instances",
            [(ti.task_id, ti.map_index, ti.state) for ti in run.get_task_instances()],
        )
        return run

    def report(self) -> None:
        """Print what was searched (``HYBRID_LEAK_DUMP=<file>`` also writes it all there, to read)."""
        for source, text in sorted(self.sources.items()):
            print(f"{len(text):>9} characters  {source}")
        if os.environ.get("HYBRID_LEAK_DUMP"):
            Path(os.environ["HYBRID_LEAK_DUMP"]).write_text(json.dumps(self.sources, indent=1))

    def drain(self, source: str) -> str:
        """Add what was printed (to the file descriptors) since the last drain; return it."""
        out, err = self.capfd.readouterr()
        self.add(source, out + err)
        return out + err

    def collect_logs(self) -> None:
        self.add("log records", self.caplog.text)
        for record in self.caplog.records:  # arguments a handler with another format would render
            self.add("log record arguments", repr(record.args) + repr(record.msg))
        self.drain("stdout and stderr")
        for folder in _log_folders():
            for path in folder.rglob("*"):
                if path.is_file():
                    self.add(f"log file {path}", path.read_text(errors="replace"))


def _xcoms(run) -> list:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, include_prior_dates=False)
        ).all()
        return [(row.task_id, row.map_index, row.key, XComModel.deserialize_value(row)) for row in rows]


def _rendered_fields(run) -> list:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return [(row.task_id, row.map_index, row.rendered_fields, row.k8s_pod_yaml) for row in rows]


def _log_folders() -> list[Path]:
    from airflow.configuration import conf

    folders = {Path(conf.get("logging", "base_log_folder")), Path(os.environ["AIRFLOW_HOME"]) / "logs"}
    return [folder for folder in folders if folder.is_dir()]


@pytest.fixture
def seen(caplog, capfd, monkeypatch):
    from airflow_hybrid.triggers.migrate import UfsMigrateTrigger

    seen = Seen(caplog, capfd)
    serialize = UfsMigrateTrigger.serialize

    def recorded(self):
        value = serialize(self)
        seen.add("trigger arguments", value)
        return value

    monkeypatch.setattr(UfsMigrateTrigger, "serialize", recorded)
    return seen


@pytest.fixture
def openlineage_events(tmp_path, monkeypatch):
    """OpenLineage on, with a file transport: the events the task runs emit (path of the file)."""
    from airflow.providers.openlineage import conf

    events = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "leak-test")

    def clear() -> None:
        for value in vars(conf).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()

    clear()
    # Airflow registers the OpenLineage listener when its plugin is first loaded, with the configuration of
    # that moment (disabled, earlier in a test session) and caches the listener's client: register it here
    # and drop the cached client, so the events go to this test's file whatever ran before.
    from airflow.listeners.listener import get_listener_manager as core_listeners
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager as sdk_listeners

    listener = get_openlineage_listener()
    listener.adapter._client = None
    added = []
    for manager in (core_listeners(), sdk_listeners()):
        if not manager.pm.is_registered(listener):
            manager.add_listener(listener)
            added.append(manager)
    yield events
    for manager in added:
        manager.pm.unregister(listener)
    listener.adapter._client = None
    clear()


def _cli(seen: Seen, policies: Path, devstack_dir: Path) -> None:
    from airflow_hybrid.cli import commands

    seen.drain("stdout and stderr")
    for as_json in (False, True):
        commands.cache_report(argparse.Namespace(mount=None, json=as_json))
        commands.policy_list(argparse.Namespace(policies=str(policies), json=as_json))
        commands.policy_status(argparse.Namespace(policies=str(policies), json=as_json))
    commands.devstack_status(argparse.Namespace(state_dir=str(devstack_dir), json=False))
    commands.devstack_status(argparse.Namespace(state_dir=str(devstack_dir), json=True))
    out = seen.drain("airflow hybrid (in process)")
    assert "Hybrid cache summary for mount 'leak_lake'" in out and "leak_orders" in out


def _cli_process(seen: Seen, policies: Path) -> None:
    from airflow import settings

    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.SQL_ALCHEMY_CONN}
    airflow = str(Path(sys.executable).with_name("airflow"))
    for args in (
        ["hybrid", "report", "--mount", MOUNT],
        ["hybrid", "policy", "status", "--policies", str(policies)],
    ):
        done = subprocess.run([airflow, *args], capture_output=True, text=True, env=env, timeout=300)
        seen.add(f"airflow {' '.join(args)}", done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr[-3000:]


def _ui(seen: Seen, policies: Path, monkeypatch) -> None:
    from tests.ui_client import ui_client

    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    client = ui_client()
    mounts = client.get("/api/mounts")
    seen.add("ui /api/mounts", mounts.text)
    seen.add("ui /api/policies", client.get("/api/policies").text)
    seen.add("ui page", client.get("/").text)
    shown = {m["conn_id"]: m for m in mounts.json()}
    assert shown[MOUNT]["cache"] and shown[KERBEROS_MOUNT]["cache"], shown  # really rendered, not errors


@pytest.mark.timeout(900)
def test_no_planted_secret_is_seen_anywhere(
    leak_lake, planted, seen, openlineage_events, devstack, tmp_path, monkeypatch
):
    from tests.e2e.dags.hybrid_leak_e2e import dag

    run = seen.run(dag, "cache + query DAG")
    assert run.state == "success", seen.sources
    dataset = make_dataset(leak_lake, seed=97, small=5, medium=1, new=1)
    migration, policies = policy_dag(tmp_path, monkeypatch, "leak_orders", mount=MOUNT, root=dataset.root,
                                     min_files=1, batch_max_files=4, timeout=120)
    run = seen.run(migration, "migration DAG")
    assert run.state == "success"
    dataset.assert_migrated()

    assert openlineage_events.is_file(), "no OpenLineage event was emitted"
    events = openlineage_events.read_text()
    seen.add("openlineage events", events)
    assert '"inputs": [{' in events or '"inputs":[{' in events  # the operators' facets are in them
    _cli(seen, policies, Path(devstack.state["state_file"]).parent)
    _cli_process(seen, policies)
    _ui(seen, policies, monkeypatch)
    seen.collect_logs()

    assert any(r.name.startswith("airflow_hybrid") for r in seen.caplog.records)  # our logs were captured
    # the search finds every planted secret where it was planted
    assert {name for _, name, _ in leaks({"connections": json.dumps(planted)})} == set(SECRETS)
    seen.report()
    hits = leaks(seen.sources)
    print(
        f"searched {len(seen.sources)} sources, {sum(map(len, seen.sources.values()))} characters: "
        f"{len(hits)} secret(s) seen"
    )
    assert hits == []


@pytest.mark.timeout(600)
def test_recording_outcomes_in_an_unreachable_state_db_never_logs_its_password(
    leak_lake, planted, seen, tmp_path, monkeypatch
):
    """The migration's outcomes cannot be recorded (the state database refuses connections): the failure is
    logged, naming the database, with its password masked."""
    from airflow_hybrid.migration.state import MigrationState

    url = sa.engine.make_url(json.loads(os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"])["extra"]["catalog_url"])
    (closed,) = free_ports(1, "127.0.0.1")
    refused = sa.create_engine(url.set(port=closed))

    def record(self, *args, **kwargs):
        with refused.connect():  # raises the driver's own OperationalError (connection refused)
            pass

    monkeypatch.setattr(MigrationState, "record", record)
    dataset = make_dataset(leak_lake, seed=98, small=3, new=0)
    migration, _ = policy_dag(tmp_path, monkeypatch, "leak_unrecorded", mount=MOUNT, root=dataset.root,
                              min_files=1, batch_max_files=4, timeout=120)
    seen.run(migration, "migration DAG, state DB unreachable")
    seen.collect_logs()

    assert "Could not record" in seen.sources["log records"]  # the path under test was taken
    seen.report()
    hits = leaks(seen.sources)
    assert hits == []
