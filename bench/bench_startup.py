"""DAG parse cost (issue 15 goal 7): per DAG file, the time to exec it beyond ``import airflow.sdk``.

Each figure is the median over ``--repeat`` fresh subprocesses (a fresh interpreter, a temporary
AIRFLOW_HOME); the ratio is to the 0.3 s target. Asserts nothing about speed.

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
PROBE = """
import json, runpy, sys, time
t = time.perf_counter()
import airflow.sdk  # noqa: F401
sdk = time.perf_counter() - t
t = time.perf_counter()
if sys.argv[1]:
    runpy.run_path(sys.argv[1])
print(json.dumps({"sdk": sdk, "dag": time.perf_counter() - t}))
"""


def probe(dag_file: str, home: str) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    out = subprocess.run([sys.executable, "-c", PROBE, dag_file], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="airflow-hybrid-bench-startup-")
    sdk = statistics.median(probe("", home)["sdk"] for _ in range(args.repeat))
    print(f"import airflow.sdk alone: {sdk:6.2f} s (median of {args.repeat}, {os.cpu_count()} cores)")
    print(f"{'DAG file':32} {'extra':>8} {'ratio to 0.3 s':>15}")
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        extra = statistics.median(probe(str(dag_file), home)["dag"] for _ in range(args.repeat))
        print(f"{dag_file.name:32} {extra:6.2f} s {extra / TARGET_DAG_S:14.2f}x")


if __name__ == "__main__":
    main()
