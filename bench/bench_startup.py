"""Start-up costs (issue 15 goals 2 and 7), each the median over ``--repeat`` fresh subprocesses (a fresh
interpreter, a temporary AIRFLOW_HOME). Asserts nothing about speed.

1. Per DAG file, the time to exec it beyond ``import airflow.sdk``, as a ratio to the 0.3 s target; split into
   Airflow's Asset-URI handler discovery (the first ``Asset`` with a URI in a process imports every provider's
   ``asset-uris`` handler; the amazon provider's S3 handler imports boto3 at its top) and the file's own cost.
   The ``hybrid_policies_file`` Variable comes from the environment, as a dag-processor's supervisor answers it;
   a process with neither reads the metadata database, which is printed apart.
2. Building a mount in a new process (``HybridMountHook.get_mount()`` from a connection with an HDFS and an S3
   member and a cache; no request is sent), as a ratio to the 0.5 s target, and then creating the S3 member's
   boto3 client (which a first S3 request would).

    .venv/bin/python bench/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _common import ROOT

TARGET_DAG_S = 0.3
TARGET_MOUNT_S = 0.5
DAG_PROBE = """
import json, runpy, sys, time
t = time.perf_counter()
import airflow.sdk  # noqa: F401
sdk = time.perf_counter() - t
t = time.perf_counter()
if sys.argv[2] == "handlers":
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    ProvidersManagerTaskRuntime().asset_uri_handlers
handlers = time.perf_counter() - t
t = time.perf_counter()
if sys.argv[1]:
    runpy.run_path(sys.argv[1])
print(json.dumps({"sdk": sdk, "handlers": handlers, "dag": time.perf_counter() - t}))
"""
MOUNT_PROBE = """
import json, time
import airflow.sdk  # noqa: F401
t = time.perf_counter()
from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
mount = HybridMountHook("startup_lake").get_mount()
cache = mount.cache
built = time.perf_counter() - t
t = time.perf_counter()
for store in mount.members.values():
    getattr(store, "client", None) if store.scheme == "s3" else None
print(json.dumps({"mount": built, "clients": time.perf_counter() - t, "cache": cache is not None}))
"""


def _env(home: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), **extra}


def _run(code: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def mount_connections(home: str) -> dict[str, str]:
    """A mount of an HDFS and an S3 member with a local cache tier, and the members' connections (never
    contacted: building the mount sends no request)."""
    mount = {
        "members": {"hdfs": {"uri": "hdfs:///lake", "conn_id": "startup_webhdfs"},
                    "s3": {"uri": "s3://startup-bucket/lake", "conn_id": "startup_aws"}},
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
        "cache": {"tiers": [{"alias": "SSD", "uri": f"file://{home}/tier", "quota": "1GiB"}],
                  "catalog_url": f"sqlite:///{home}/catalog.db"},
    }
    return {
        "AIRFLOW_CONN_STARTUP_LAKE": json.dumps({"conn_type": "hybrid_mount", "extra": mount}),
        "AIRFLOW_CONN_STARTUP_WEBHDFS": json.dumps({"conn_type": "webhdfs", "host": "127.0.0.1", "port": 9,
                                                    "login": "hdfs"}),
        "AIRFLOW_CONN_STARTUP_AWS": json.dumps({"conn_type": "aws", "login": "key", "password": "secret",
                                                "extra": {"endpoint_url": "http://127.0.0.1:9",
                                                          "region_name": "us-east-1"}}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="airflow-hybrid-bench-startup-")
    variable = {"AIRFLOW_VAR_HYBRID_POLICIES_FILE": str(ROOT / "dags" / "hybrid_policies.yaml")}
    env = _env(home, **variable)
    base = [_run(DAG_PROBE, env, "", "handlers") for _ in range(args.repeat)]
    sdk, handlers = _median(base, "sdk"), _median(base, "handlers")
    print(f"{os.cpu_count()} cores, median of {args.repeat} fresh processes")
    print(f"import airflow.sdk alone: {sdk:6.2f} s; Airflow's Asset-URI handler discovery (once per process, "
          f"the amazon provider's imports boto3): {handlers:5.2f} s")
    print(f"{'DAG file':28} {'own':>8} {'ratio to 0.3 s':>15} {'with handlers':>14} {'ratio':>7}")
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        runs = [_run(DAG_PROBE, env, str(dag_file), "handlers") for _ in range(args.repeat)]
        own = _median(runs, "dag")
        total = statistics.median(run["dag"] + run["handlers"] for run in runs)
        print(f"{dag_file.name:28} {own:6.2f} s {own / TARGET_DAG_S:14.2f}x {total:12.2f} s "
              f"{total / TARGET_DAG_S:6.2f}x")
    migrate = ROOT / "dags" / "hybrid_ufs_migrate.py"
    bare = [_run(DAG_PROBE, _env(home), str(migrate), "handlers") for _ in range(args.repeat)]
    print(f"  {migrate.name} without the Variable in the environment or a supervisor (the metadata database is "
          f"read): {_median(bare, 'dag'):.2f} s")
    mounts = [_run(MOUNT_PROBE, _env(home, **mount_connections(home))) for _ in range(args.repeat)]
    built, clients = _median(mounts, "mount"), _median(mounts, "clients")
    print(f"mount build (HDFS + S3 members, a cache) in a new process: {built:.2f} s, {built / TARGET_MOUNT_S:.2f}x "
          f"the 0.5 s target; then the S3 member's boto3 client: +{clients:.2f} s")


if __name__ == "__main__":
    main()
