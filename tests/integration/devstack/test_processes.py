"""The devstack's child processes: started with their output in a log, waited for, stopped (SIGKILL when
SIGTERM is ignored). The children are small Python scripts; readiness is a line in their log."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from airflow_hybrid.devstack import processes

pytestmark = pytest.mark.integration

_SERVER = """
import signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
if sys.argv[1] == "exits":
    sys.exit(3)
while True:
    time.sleep(3600)
"""


class Failed(Exception):
    pass


def _start(tmp_path, mode: str, **kwargs):
    log = tmp_path / f"{mode}.log"
    return processes.spawn([sys.executable, "-c", _SERVER, mode], log, **kwargs), log


def _wait(process, log, timeout: float = 60.0) -> None:
    processes.wait_ready(
        lambda: "ready" in log.read_text(),
        {"server": process},
        timeout,
        exited=lambda name, code: Failed(f"{name} exited with {code}"),
        timed_out=lambda: Failed("timed out"),
        interval=0.01,
    )


def test_a_server_is_waited_for_then_stopped_by_sigterm(tmp_path):
    process, log = _start(tmp_path, "polite")
    try:
        _wait(process, log)
        assert process.poll() is None
        assert log.read_text() == "ready\n"  # its output goes to the log
    finally:
        processes.stop([process], timeout=30)
    assert process.returncode == -signal.SIGTERM


def test_a_server_ignoring_sigterm_is_killed(tmp_path):
    process, log = _start(tmp_path, "stubborn")
    try:
        _wait(process, log)
    finally:
        processes.stop([process], timeout=0.5)
    assert process.returncode == -signal.SIGKILL


def test_a_server_exiting_during_start_raises_its_error(tmp_path):
    process, log = _start(tmp_path, "exits")
    process.wait()
    with pytest.raises(Failed, match="server exited with 3"):
        _wait(process, log)


def test_a_server_never_ready_times_out(tmp_path):
    process, log = _start(tmp_path, "polite")
    try:
        with pytest.raises(Failed, match="timed out"):
            processes.wait_ready(
                lambda: False, {"server": process}, 0.0,
                exited=lambda name, code: Failed("exited"), timed_out=lambda: Failed("timed out"),
            )  # fmt: skip
    finally:
        processes.stop([process], timeout=30)


def test_the_log_is_appended_to_on_request(tmp_path):
    log = tmp_path / "polite.log"
    log.write_text("earlier run\n")
    process, _ = _start(tmp_path, "polite", append=True)
    try:
        _wait(process, log)
    finally:
        processes.stop([process], timeout=30)
    assert log.read_text() == "earlier run\nready\n"


_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
print(child.pid, flush=True)
while True:
    time.sleep(3600)
"""


def test_what_a_server_started_in_its_session_is_stopped_with_it(tmp_path):
    """A server's own children (an executor's workers, a task process) do not outlive it: they would keep its
    database sessions and ports."""
    log = tmp_path / "parent.log"
    process = processes.spawn([sys.executable, "-c", _PARENT], log)
    try:
        processes.wait_ready(lambda: log.read_text().strip().isdigit(), {"parent": process}, 60.0,
                             exited=lambda name, code: Failed(f"{name} exited"), timed_out=lambda: Failed("timed out"),
                             interval=0.01)
        child = int(log.read_text())
    finally:
        processes.stop([process], timeout=30)
    deadline = time.monotonic() + 30  # SIGKILL is delivered at once; init reaps the orphan soon after
    while not _is_gone(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _is_gone(child)


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
