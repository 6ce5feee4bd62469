"""Small Parquet files of a ``sales`` table (``k``, ``v``) for query tests: part ``i`` holds keys ``i * 1000 + r``."""

from __future__ import annotations

from pathlib import Path

import duckdb


def write_part(path: Path, i: int, rows: int = 500, offset: int = 0) -> Path:
    """Write part ``i`` (``rows`` rows; ``offset`` shifts the values: another version of the file) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT r + {i * 1000} AS k, (r * 7 + {offset}) % 101 AS v FROM range({rows}) t(r)) "
            f"TO '{path}' (FORMAT parquet)"
        )
    finally:
        con.close()
    return path
