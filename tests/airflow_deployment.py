"""A real Airflow 3 deployment for end-to-end tests: its own PostgreSQL metadata database and AIRFLOW_HOME, and
the components as separate processes (``api-server``, ``scheduler`` with the LocalExecutor, ``dag-processor``,
``triggerer``), talking to each other only as a deployment's do (the metadata database, the API server's REST
and Execution APIs). With ``executor="CeleryExecutor"`` the scheduler queues the tasks on Redis (a queue of the
deployment's own) and ``celery_workers`` (``airflow celery worker`` processes) run them, each reporting its own
name as the task instances' ``hostname``.

Every process gets the same environment: none of this test process's ``AIRFLOW*`` variables, then the
deployment's configuration, then ``env`` (connections as ``AIRFLOW_CONN_*`` JSON, extra settings). The REST
API needs no login (``simple_auth_manager_all_admins``). ::

    with AirflowDeployment(home, bundles={"test-dags": dags_dir}, env=connections) as airflow:
        run = airflow.api("POST", "/dags/my_dag/dagRuns", json={"logical_date": None})

    with AirflowDeployment(home, bundles, executor="CeleryExecutor", celery_workers=("w1", "w2")) as airflow:
        ...  # task instances run by worker w1 have hostname "w1"
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from airflow_hybrid.devstack.processes import Service, free_ports, spawn, stop, wait_ready
from tests.services import postgres_url, unavailable

log = logging.getLogger(__name__)

#: The long-running components, in start order; each is ``airflow <name>``.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The ``/monitor/health`` entry of each component that reports one.
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
#: The Redis server that scripts/services.sh starts (the Celery broker).
REDIS_URL = os.environ.get("HYBRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
#: A Celery worker's task instances report ``os.environ[WORKER_HOSTNAME_VARIABLE]`` as their hostname.
WORKER_HOSTNAME_VARIABLE = "HYBRID_DEPLOYMENT_WORKER_HOSTNAME"
_HOSTNAME_MODULE = "hybrid_deployment_hostname"
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
    :param executor: ``LocalExecutor`` (tasks run by the scheduler) or ``CeleryExecutor``.
    :param celery_workers: with the CeleryExecutor, a worker process per name (``airflow celery worker``, each
        with its own log server port), all on the deployment's queue; the name is what its task instances
        report as ``hostname``, and the process's key in :attr:`processes` is ``celery-worker-<name>``.
    :param worker_concurrency: task slots of each Celery worker (``--concurrency``).
    :param broker_url: the Celery broker (default :data:`REDIS_URL`, which must answer).
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
        executor: str = "LocalExecutor",
        celery_workers: Sequence[str] = (),
        worker_concurrency: int = 1,
        broker_url: str | None = None,
    ):
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        if celery_workers and executor != "CeleryExecutor":
            raise ValueError(f"celery_workers {list(celery_workers)} need executor='CeleryExecutor'")
        if len(set(celery_workers)) != len(celery_workers):
            raise ValueError(f"celery_workers must be distinct names, got {list(celery_workers)}")
        self.home = Path(home)
        self.bundles = dict(bundles)
        self.extra_env = dict(env or {})
        self.components = tuple(components)
        self.pg_url = pg_url
        self.start_timeout = start_timeout
        self.executor = executor
        self.celery_workers = tuple(celery_workers)
        self.worker_concurrency = worker_concurrency
        self.broker_url = broker_url
        #: The Celery queue of this deployment's tasks (unique, so other users of the broker never take them).
        self.queue = f"hybrid-deployment-{secrets.token_hex(4)}"
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
            if self.executor == "CeleryExecutor" and self.broker_url is None:
                self.broker_url = redis_url()
            api_port, worker_logs_port, trigger_logs_port, *celery_log_ports = free_ports(
                3 + len(self.celery_workers), "127.0.0.1")
            self.api_url = f"http://127.0.0.1:{api_port}"
            self.env = self._environment(api_port, worker_logs_port, trigger_logs_port)
            self._migrate()
            for name in self.components:
                command = [sys.executable, "-m", "airflow", name]
                if name == "api-server":
                    command += ["--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
                self.processes[name] = spawn(command, self.logs / f"{name}.log", env=self.env)
            for worker, log_port in zip(self.celery_workers, celery_log_ports, strict=True):
                self._start_celery_worker(worker, log_port)
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
            if self.celery_workers:
                self.wait_for(f"Celery workers {', '.join(self.celery_workers)} answering a ping",
                              self._celery_workers_ready, self.start_timeout)
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
            except sa.exc.OperationalError:  # "is being accessed by other users"
                if time.monotonic() > deadline:
                    self._force_drop_database()
                    return
                time.sleep(0.5)
            else:
                self.database = None
                return

    def _force_drop_database(self) -> None:
        """Drop the database with its remaining sessions closed (PostgreSQL 13+), naming them in the log."""
        with self._admin_engine.connect() as conn:
            sessions = conn.execute(sa.text(
                "SELECT pid, application_name, state, left(query, 80) FROM pg_stat_activity WHERE datname = :db"
            ), {"db": self.database}).all()
            log.warning("database %s still had %d session(s) after the processes stopped: %s",
                        self.database, len(sessions), sessions)
            try:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            except sa.exc.DBAPIError as error:
                raise DeploymentError(f"database {self.database} was not dropped: {error}") from error
        self.database = None

    def _environment(self, api_port: int, worker_logs_port: int, trigger_logs_port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        secret = secrets.token_urlsafe(32)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
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
        if self.executor == "CeleryExecutor":
            env.update({
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,  # results: the metadata database (the default)
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            })
        env.update(self.extra_env)
        return env

    def _start_celery_worker(self, name: str, log_port: int) -> None:
        """``airflow celery worker`` on the deployment's queue; its task instances report ``name`` as hostname
        (``[core] hostname_callable``, a module written into AIRFLOW_HOME), its log server on ``log_port``."""
        modules = self.home / "deployment-python"
        modules.mkdir(exist_ok=True)
        (modules / f"{_HOSTNAME_MODULE}.py").write_text(
            f"import os\n\n\ndef hostname() -> str:\n    return os.environ[{WORKER_HOSTNAME_VARIABLE!r}]\n")
        env = {
            **self.env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(modules), self.env.get("PYTHONPATH")])),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{_HOSTNAME_MODULE}.hostname",
            WORKER_HOSTNAME_VARIABLE: name,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        }
        command = [sys.executable, "-m", "airflow", "celery", "worker", "--queues", self.queue,
                   "--concurrency", str(self.worker_concurrency), "--celery-hostname", self._celery_node(name),
                   "--pid", str(self.home / f"celery-worker-{name}.pid"), "--without-mingle", "--without-gossip"]
        self.processes[f"celery-worker-{name}"] = spawn(command, self.logs / f"celery-worker-{name}.log", env=env)

    def _celery_node(self, name: str) -> str:
        """The Celery node name of worker ``name`` (unique to this deployment, as its queue)."""
        return f"{name}-{self.queue}@127.0.0.1"

    def _celery_workers_ready(self) -> bool | None:
        """True once every worker answers a ping on the broker (it consumes the queue then)."""
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            replies = app.control.ping(destination=[self._celery_node(n) for n in self.celery_workers], timeout=1.0)
        finally:
            app.close()
        answered = {node for reply in replies for node in reply}
        return True if answered == {self._celery_node(n) for n in self.celery_workers} else None

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

    # -- a user's REST API calls ------------------------------------------------------------------------------
    def unpause(self, dag_id: str) -> dict[str, Any]:
        """``PATCH /dags/<dag_id>`` with ``is_paused: false``; the DAG as the API answers."""
        return self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """``POST /dags/<dag_id>/dagRuns`` (no logical date) with ``conf``; the new run's id."""
        return self.api("POST", f"/dags/{dag_id}/dagRuns",
                        json={"logical_date": None, "conf": dict(conf or {})})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """The run once it ended (``success`` or ``failed``), polled until ``timeout``."""
        def ended() -> dict[str, Any] | None:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        return self.wait_for(f"end of {dag_id} run {run_id}", ended, timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones one per map index)."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                        params={"limit": 1000})["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
             map_index: int | None = None) -> Any:
        """An XCom's value (decoded when the API answers it as JSON text)."""
        params = {} if map_index is None else {"map_index": map_index}
        value = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                         params=params)["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int,
                 map_index: int | None = None) -> str:
        """A task instance try's whole log, as text."""
        params = {"full_content": "true", **({} if map_index is None else {"map_index": map_index})}
        content = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                           params=params, headers={"Accept": "application/json"})["content"]
        return content if isinstance(content, str) else "\n".join(json.dumps(part) for part in content)

    def failed_tasks_logs(self, dag_id: str, run_id: str, chars: int = 3000) -> str:
        """The ends of the logs of a run's task instances that did not succeed (for a failure message)."""
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in ("success", "skipped"):
                continue
            map_index = None if ti["map_index"] < 0 else ti["map_index"]
            try:
                log = self.task_log(dag_id, run_id, ti["task_id"], max(ti["try_number"], 1), map_index)
            except DeploymentError as error:
                log = f"(no log: {str(error).splitlines()[0]})"
            parts.append(f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']}\n{log[-chars:]}")
        return "\n".join(parts)

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


@contextlib.contextmanager
def postgres_database(prefix: str = "hybrid_scratch") -> Iterator[str]:
    """A fresh PostgreSQL database ``<prefix>_<random>`` for the block (its URL), dropped after it, e.g. a cache
    catalog that every process of a deployment shares."""
    url = sa.engine.make_url(postgres_url())
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def redis_url() -> str:
    """:data:`REDIS_URL` once it answers a ``PING`` (else :func:`tests.services.unavailable`)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable(f"Redis is not reachable at {REDIS_URL} ({error})")
    finally:
        client.close()
    return REDIS_URL


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"

