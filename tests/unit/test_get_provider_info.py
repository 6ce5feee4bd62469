"""The provider as Airflow sees it: entry point, connection type, filesystems, CLI, operators."""

from __future__ import annotations

import importlib


def test_every_module_named_in_provider_info_imports():
    from airflow_hybrid.get_provider_info import get_provider_info

    info = get_provider_info()
    modules = [m for group in ("hooks", "operators", "sensors", "triggers") for e in info[group] for m in e["python-modules"]]
    modules += info["filesystems"]
    for module in modules:
        importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        assert getattr(importlib.import_module(module), cls).conn_type == conn["connection-type"]


def test_airflow_discovers_the_provider_and_the_hybrid_scheme():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-hybrid" in ProvidersManager().providers
    runtime = ProvidersManagerTaskRuntime()
    assert "hybrid_mount" in runtime.hooks
    assert "airflow_hybrid.mount.filesystem" in runtime.filesystem_module_names


def test_hybrid_scheme_resolves_through_airflow_object_storage():
    from airflow.sdk.io.fs import get_fs

    from airflow_hybrid.mount.filesystem import HybridFileSystem

    assert isinstance(get_fs("hybrid"), HybridFileSystem)
