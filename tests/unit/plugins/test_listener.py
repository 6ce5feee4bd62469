"""The plugin's listener writes a task's pending cache hits before the task's process stops (``os._exit``)."""

from __future__ import annotations

import sys

from airflow.sdk.listener import get_listener_manager

from airflow_hybrid.cache import hits
from airflow_hybrid.cache.hits import HitRecorder


def test_before_stopping_writes_the_hits_still_gathered(monkeypatch):
    monkeypatch.setattr(hits, "_LINGER_SECONDS", 600.0)  # the writer thread would hold them for minutes
    written = []
    recorder = HitRecorder(written.extend)
    recorder.record("entry", 1.0)  # type: ignore[arg-type]

    # as the task runner does last, through Airflow's listener manager (the plugin comes by its entry point)
    get_listener_manager().hook.before_stopping(component=object())

    assert written == [("entry", 1.0)]


def test_the_listener_imports_no_cache_in_a_process_that_used_none(monkeypatch):
    from airflow_hybrid.plugins import listener

    monkeypatch.delitem(sys.modules, "airflow_hybrid.cache.hits")
    listener.before_stopping(component=object())
    assert "airflow_hybrid.cache.hits" not in sys.modules
