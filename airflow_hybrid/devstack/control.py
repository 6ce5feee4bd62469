"""Run the devstack as a background process: ``up``, ``down``, ``status``, and a client to drive it.

``devstack_up(state_dir)`` starts ``python -m airflow_hybrid.devstack --state-dir <state_dir>``, which
writes ``<state_dir>/devstack.json`` (pid, ports, URLs, data directory) once it serves. The other
functions find the process through that file. :class:`DevStackClient` offers the in-process
:class:`~airflow_hybrid.devstack.stack.DevStack` API (addresses, ``connections()``, ``stats()``,
``shaping``) over the stack's ``/_devstack/`` HTTP endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import airflow_hybrid
from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.stack import DEFAULT_BUCKET, STATE_FILE, StackConnections
from airflow_hybrid.exceptions import HybridError

LOG_FILE = "devstack.log"


class DevStackError(HybridError, RuntimeError):
    """The background devstack could not be started, reached or stopped."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _http(url: str, payload: dict | None = None, timeout: float = 10.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            detail = json.loads(detail).get("error", detail)
        raise DevStackError(f"devstack control call {url} failed: HTTP {error.code}: {detail}") from None


def _healthy(state: dict) -> bool:
    try:
        return _http(f"{state['control_url']}/_devstack/health", timeout=2.0).get("pid") == state["pid"]
    except (OSError, DevStackError, ValueError, KeyError):
        return False


def devstack_status(state_dir: str | os.PathLike) -> dict[str, Any]:
    """``running``/``healthy`` flags plus the state file's content (pid, ports, URLs, data directory)."""
    state_dir = Path(state_dir)
    state = _read_state(state_dir)
    if state is None:
        return {"running": False, "healthy": False, "state_file": str(state_dir / STATE_FILE)}
    running = _pid_alive(int(state.get("pid", -1)))
    return {
        **state,
        "running": running,
        "healthy": running and _healthy(state),
        "stale": not running,
        "state_file": str(state_dir / STATE_FILE),
    }


def devstack_up(
    state_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    buckets: tuple[str, ...] = (DEFAULT_BUCKET,),
    list_page_size: int | None = None,
    block_size: int | None = None,
    seed: int | None = None,
    shaping: dict[str, dict] | None = None,
    hdfs: str = "devstack",
    timeout: float | None = None,
    with_parent: bool = False,
) -> dict[str, Any]:
    """Start the devstack in the background (unless it already runs) and return its status.

    ``with_parent=True`` ties it to the calling thread's process (it gets SIGTERM when that dies: a killed
    test run leaves no server behind); by default it outlives the command that started it.

    Data lives in ``data_dir`` (default ``<state_dir>/data``, kept across restarts); the process log is
    ``<state_dir>/devstack.log``. ``hdfs="hadoop"`` runs Apache Hadoop's HDFS instead of our WebHDFS server.
    """
    if timeout is None:
        timeout = 240.0 if hdfs == "hadoop" else 60.0
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    status = devstack_status(state_dir)
    if status["running"]:
        if status["healthy"]:
            return status
        raise DevStackError(
            f"a devstack process {status['pid']} exists but does not answer; run devstack_down first"
        )
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "airflow_hybrid.devstack",
        "--state-dir",
        str(state_dir),
        "--data-dir",
        str(Path(data_dir).resolve() if data_dir is not None else state_dir / "data"),
        "--host",
        host,
    ]
    for bucket in buckets:
        command += ["--bucket", bucket]
    if list_page_size is not None:
        command += ["--list-page-size", str(list_page_size)]
    if block_size is not None:
        command += ["--block-size", str(block_size)]
    if seed is not None:
        command += ["--seed", str(seed)]
    if shaping:
        command += ["--shaping", json.dumps(shaping)]
    command += ["--hdfs", hdfs]
    env = dict(os.environ)
    package_parent = str(Path(airflow_hybrid.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    log_path = state_dir / LOG_FILE
    process = processes.spawn(command, log_path, env=env, append=True, with_parent=with_parent)

    def up() -> bool:
        state = _read_state(state_dir)
        return state is not None and state.get("pid") == process.pid and _healthy(state)

    def exited(_: str, code: int) -> DevStackError:
        tail = log_path.read_text(errors="replace")[-2000:]
        return DevStackError(f"the devstack exited with code {code} during start; log {log_path}:\n{tail}")

    def timed_out() -> DevStackError:
        process.terminate()
        return DevStackError(f"the devstack did not come up within {timeout:.0f} s; see {log_path}")

    processes.wait_ready(up, {"devstack": process}, timeout, exited=exited, timed_out=timed_out, interval=0.05)
    return devstack_status(state_dir)


def devstack_down(state_dir: str | os.PathLike, timeout: float = 15.0) -> bool:
    """Stop the background devstack; ``False`` when none was running."""
    state_dir = Path(state_dir)
    state = _read_state(state_dir)
    if state is None:
        return False
    pid = int(state.get("pid", -1))
    was_running = pid > 0 and _pid_alive(pid)
    if was_running:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    """Collect the exit status when the devstack is our child (otherwise it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class RemoteShaping:
    """:class:`~airflow_hybrid.devstack.shaping.Shaping` of a devstack in another process, over HTTP."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")

    def configure(self, target: str = "all", **settings: Any) -> dict:
        return _http(f"{self.control_url}/_devstack/shaping", {"target": target, **settings})

    def fail_next(
        self,
        count: int = 1,
        *,
        op: str = "*",
        kind: str = "reset",
        target: str = "all",
        after_bytes: int | None = None,
    ) -> dict:
        payload = {"count": count, "op": op, "kind": kind, "target": target, "after_bytes": after_bytes}
        return _http(f"{self.control_url}/_devstack/shaping/fail_next", payload)

    def clear(self, target: str = "all") -> dict:
        return _http(f"{self.control_url}/_devstack/shaping/clear", {"target": target})

    def snapshot(self) -> dict:
        return _http(f"{self.control_url}/_devstack/shaping")

    def stats(self, target: str) -> dict:
        return self.snapshot()[target]["stats"]


class DevStackClient(StackConnections):
    """A running devstack seen from another process: addresses, connections, stats and shaping."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.shaping = RemoteShaping(state["control_url"])

    @classmethod
    def from_state_dir(cls, state_dir: str | os.PathLike) -> DevStackClient:
        status = devstack_status(state_dir)
        if not status["running"]:
            raise DevStackError(f"no devstack runs for state directory {state_dir} ({status['state_file']})")
        return cls(status)

    @property
    def host(self) -> str:
        return self.state["host"]

    @property
    def user(self) -> str:
        return self.state["user"]

    @property
    def pid(self) -> int:
        return self.state["pid"]

    @property
    def data_dir(self) -> Path:
        return Path(self.state["data_dir"])

    @property
    def hdfs_dir(self) -> Path:
        return Path(self.state["hdfs_dir"])

    @property
    def webhdfs_host(self) -> str:
        return self.state["host"]

    @property
    def webhdfs_port(self) -> int:
        return self.state["webhdfs_port"]

    @property
    def webhdfs_url(self) -> str:
        return self.state["webhdfs_url"]

    @property
    def datanode_url(self) -> str:
        return self.state["datanode_url"]

    @property
    def s3_endpoint(self) -> str:
        return self.state["s3_endpoint"]

    @property
    def control_url(self) -> str:
        return self.state["control_url"]

    def stats(self) -> dict[str, Any]:
        return _http(f"{self.control_url}/_devstack/stats")

    def reset_stats(self) -> dict[str, Any]:
        return _http(f"{self.control_url}/_devstack/stats/reset", {})

    def ensure_bucket(self, name: str) -> str:
        return _http(f"{self.control_url}/_devstack/buckets", {"name": name})["bucket"]

    def configure(self, **settings: Any) -> dict:
        """Runtime settings of the stack, e.g. ``list_page_size``."""
        return _http(f"{self.control_url}/_devstack/config", settings)

