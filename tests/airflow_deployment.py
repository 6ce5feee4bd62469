"""A real Airflow 3 deployment for end-to-end tests: its own PostgreSQL metadata database and AIRFLOW_HOME, and
the components as separate processes (``api-server``, ``scheduler`` with the LocalExecutor, ``dag-processor``,
``triggerer``), talking to each other only as a deployment's do (the metadata database, the API server's REST
and Execution APIs).

Every process gets the same environment: none of this test process's ``AIRFLOW*`` variables, then the
deployment's configuration, then ``env`` (connections as ``AIRFLOW_CONN_*`` JSON, extra settings). The REST
API needs no login (``simple_auth_manager_all_admins``). ::

    with AirflowDeployment(home, bundles={"test-dags": dags_dir}, env=connections) as airflow:
        run = airflow.api("POST", "/dags/my_dag/dagRuns", json={"logical_date": None})
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from airflow_hybrid.devstack.processes import Service, free_ports, spawn, stop, wait_ready
from tests.services import postgres_url

#: The long-running components, in start order; each is ``airflow <name>``.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The ``/monitor/health`` entry of each component that reports one.
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
_T = TypeVar("_T")


class DeploymentError(RuntimeError):
    """The deployment did not start, or did not reach a state in time; the message carries the logs' tails."""


class AirflowDeployment(Service):
    """Airflow 3 on a fresh PostgreSQL database ``hybrid_airflow_<random>`` (dropped by :meth:`stop`).

    :param home: the AIRFLOW_HOME (created; logs of the processes in ``home/process-logs``).
    :param bundles: DAG bundle name -> directory (``LocalDagBundle``s).
    :param env: more environment for every process (``AIRFLOW_CONN_*``, ``AIRFLOW__*`` settings).
    :param components: the ``airflow`` commands to run as processes.
    :param pg_url: a PostgreSQL URL whose role may create databases (default :data:`tests.services.PG_URL`).
    :param start_timeout: seconds for ``db migrate`` and for the components to report healthy, each.
    """

    def __init__(
        self,
        home: Path,
        bundles: Mapping[str, Path],
        env: Mapping[str, str] | None = None,
        *,
        components: Sequence[str] = COMPONENTS,
        pg_url: str | None = None,
        start_timeout: float = 300.0,
    ):
        self.home = Path(home)
        self.bundles = dict(bundles)
        self.extra_env = dict(env or {})
        self.components = tuple(components)
        self.pg_url = pg_url
        self.start_timeout = start_timeout
        self.logs = self.home / "process-logs"
        self.processes: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.database: str | None = None
        self.db_url: str | None = None
        self.api_url = ""
        self._admin_engine: sa.Engine | None = None
        self._engine: sa.Engine | None = None
        self._client: httpx.Client | None = None

    # -- life cycle ---------------------------------------------------------------------------------------------
    def start(self) -> AirflowDeployment:
        try:
            self._create_database()
            self.logs.mkdir(parents=True, exist_ok=True)
            api_port, worker_logs_port, trigger_logs_port = free_ports(3, "127.0.0.1")
            self.api_url = f"http://127.0.0.1:{api_port}"
            self.env = self._environment(api_port, worker_logs_port, trigger_logs_port)
            self._migrate()
            for name in self.components:
                command = [sys.executable, "-m", "airflow", name]
                if name == "api-server":
                    command += ["--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
                self.processes[name] = spawn(command, self.logs / f"{name}.log", env=self.env)
            self._client = httpx.Client(base_url=f"{self.api_url}/api/v2", timeout=30.0)
            wait_ready(
                self._healthy, self.processes, self.start_timeout,
                exited=lambda name, code: DeploymentError(f"airflow {name} exited with {code}\n{self.log_tails()}"),
                timed_out=lambda: DeploymentError(
                    f"the deployment was not healthy within {self.start_timeout}s: {self._health_text()}\n"
                    f"{self.log_tails()}"
                ),
                interval=0.5,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        stop(self.processes.values(), timeout=30.0)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._admin_engine is not None:
            if self.database is not None:
                self._drop_database()
            self._admin_engine.dispose()
            self._admin_engine = None

    def _create_database(self) -> None:
        url = sa.engine.make_url(self.pg_url or postgres_url())
        self._admin_engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        name = f"hybrid_airflow_{secrets.token_hex(4)}"
        with self._admin_engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.database = name
        self.db_url = url.set(database=name).render_as_string(hide_password=False)

    def _drop_database(self, timeout: float = 30.0) -> None:
        """Drop the database once the stopped processes' server backends have gone (they exit just after)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._admin_engine.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}"'))
            except sa.exc.OperationalError as error:  # "is being accessed by other users"
                if time.monotonic() > deadline:
                    raise DeploymentError(f"database {self.database} was not dropped: {error}") from error
                time.sleep(0.5)
            else:
                self.database = None
                return

    def _environment(self, api_port: int, worker_logs_port: int, trigger_logs_port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        secret = secrets.token_urlsafe(32)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,  # every process signs and checks the same tokens
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
                {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                 "kwargs": {"path": str(path)}}
                for name, path in self.bundles.items()
            ]),
        })
        env.update(self.extra_env)
        return env

    def _migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with open(log, "wb") as out:
            result = subprocess.run(  # noqa: S603 - a fixed airflow command
                [sys.executable, "-m", "airflow", "db", "migrate"], env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=self.start_timeout, check=False,
            )
        if result.returncode != 0:
            raise DeploymentError(f"airflow db migrate exited with {result.returncode}:\n{_tail(log, 40)}")

    # -- state ------------------------------------------------------------------------------------------------
    def _health(self) -> dict[str, Any] | None:
        try:
            response = self.client.get("/monitor/health")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def _healthy(self) -> bool:
        health = self._health()
        if health is None:
            return False
        keys = [_HEALTH_KEYS[name] for name in self.components if name in _HEALTH_KEYS]
        return all((health.get(key) or {}).get("status") == "healthy" for key in keys)

    def _health_text(self) -> str:
        health = self._health()
        return "the API server does not answer" if health is None else json.dumps(health)

    @property
    def client(self) -> httpx.Client:
        """An HTTP client on the REST API (``/api/v2``)."""
        if self._client is None:
            raise DeploymentError("the deployment is not started")
        return self._client

    @property
    def engine(self) -> sa.Engine:
        """An engine on the deployment's metadata database, for reading what the API does not show."""
        if self._engine is None:
            self._engine = sa.create_engine(self.db_url)
        return self._engine

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method path`` on the REST API (``path`` below ``/api/v2``); the JSON answer, or
        :class:`DeploymentError` with the answer and the logs' tails for a status of 400 or more."""
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise DeploymentError(f"{method} {path} answered {response.status_code}: {response.text}\n"
                                  f"{self.log_tails()}")
        return response.json() if response.content else None

    def wait_for(self, what: str, probe: Callable[[], _T | None], timeout: float = 120.0,
                 interval: float = 0.5) -> _T:
        """Call ``probe()`` until it returns something other than ``None`` (returned) or a process exits or
        ``timeout`` seconds pass (:class:`DeploymentError` naming ``what``, with the logs' tails)."""
        found: list[_T] = []

        def ready() -> bool:
            value = probe()
            if value is not None:
                found.append(value)
            return bool(found)

        wait_ready(
            ready, self.processes, timeout,
            exited=lambda name, code: DeploymentError(
                f"airflow {name} exited with {code} while waiting for {what}\n{self.log_tails()}"),
            timed_out=lambda: DeploymentError(f"no {what} within {timeout}s\n{self.log_tails()}"),
            interval=interval,
        )
        return found[0]

    def log_tails(self, lines: int = 30) -> str:
        """The last ``lines`` lines of every process's log, each under its name."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.stem} (last {lines} lines) ---\n{_tail(log, lines)}")
        return "\n".join(parts)

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> dict[int, str]:
        """Triggerer job id -> the log a triggerer wrote for a task instance's triggers (``<task log>.trigger.
        <job id>.log`` beside the task's log in AIRFLOW_HOME/logs)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        prefix = f"attempt={try_number}.log.trigger."
        return {int(path.name.removeprefix(prefix).removesuffix(".log")): path.read_text(errors="replace")
                for path in folder.glob(f"{prefix}*.log")}


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"

