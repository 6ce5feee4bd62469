"""Policy parse time against the number of actions: linear (issue 11: 8,000 actions took 9 s, quadratic).

Parses ``ufsMigrate(1m, UFS[hdfs]:REMOVE, UFS[s0]:STORE, ... UFS[s<N-1>]:STORE)`` for N = 1,000 .. 16,000
(best of ``--repeat`` runs each) and prints the time, the time per action and the ratio to the previous N
(about 2 for a linear parse, about 4 for a quadratic one). Asserts nothing about speed.

    .venv/bin/python bench/bench_policy_parse.py [--max-actions 16000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from _common import ROOT  # noqa: F401 - puts the project on sys.path

from airflow_hybrid.policy.parser import parse_policy


def policy(actions: int) -> str:
    return "ufsMigrate(1m, UFS[hdfs]:REMOVE, " + ", ".join(f"UFS[s{i}]:STORE" for i in range(actions)) + ")"


def best_time(text: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        parse_policy(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-actions", type=int, default=16_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'actions':>8} {'chars':>9} {'parse':>9} {'per action':>11} {'ratio':>6}")
    previous = None
    actions = 1000
    while actions <= args.max_actions:
        text = policy(actions)
        seconds = best_time(text, args.repeat)
        ratio = f"{seconds / previous:6.2f}" if previous else "     -"
        print(f"{actions:>8} {len(text):>9} {seconds * 1000:7.1f}ms {seconds / actions * 1e6:9.1f}us {ratio}")
        previous, actions = seconds, actions * 2


if __name__ == "__main__":
    main()
