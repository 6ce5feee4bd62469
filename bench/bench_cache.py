"""Benchmark: DuckDB over ``hybrid://`` through a WAN-like link, cold and warm, against a local directory.

One run prints the figures (nothing is asserted about speed)::

    .venv/bin/python bench/bench_cache.py [--scale-factor 1] [--files 12] [--latency-ms 20] [--bandwidth-mb 50]

What it does:

1. starts the devstack (WebHDFS + S3 servers) in a background process and writes TPC-DS ``store_sales``
   (``airflow_hybrid.query.tpcds``; DuckDB-generated synthetic rows if the TPC-DS extension is missing) as Parquet
   files to a local directory, then uploads them to the HDFS member of the union mount (``s3,hdfs``);
2. shapes both links like a WAN: a fixed latency per request and a shared bandwidth cap;
3. runs one aggregate query with DuckDB (``register_filesystem(HybridFileSystem())``) over
   ``read_parquet('hybrid://bench_lake/tpcds/store_sales/*.parquet')``:

   * cold: empty cache -- the files of DuckDB's glob are loaded whole into the tier just ahead of DuckDB
     (``scan_read_ahead``: opening a file in the glob's order starts the loads of the next ones), and every read
     waits for its file's load (``join_running_load_up_to``) rather than fetching the same bytes twice; the
     process's S3 client is built before (once per process; ``bench_startup`` measures that);
   * warm: after those loads finished, served from the cache tier (a local directory); the glob still lists
     the directory at the members;
   * warm, listings from the catalog: the same with the cache's ``listing_sync_interval`` set (Alluxio's
     metadata sync for directories), so a warm query sends no request over the link at all;
   * local: the same files read by DuckDB from the local directory, once before each warm run (alternated, so
     the machine's drift slows both alike; the best is kept, as for every warm figure);

   * warm native: as ``DuckDBQuery`` plans it (``airflow_hybrid.query.native``): fresh copies in the local tier
     read natively by DuckDB, files on S3 by DuckDB's httpfs, the rest through ``hybrid://``; the line says how
     many files went each way; once with the freshness check (one listing per member) before the query, once
     as DuckDBQuery does by default: planned from the catalog's ready copies, the check running alongside the
     query and confirmed after it (``TablePlanner.confirm``);

   plus, for context, the same local files through an fsspec filesystem (the Python bridge ``hybrid://``
   goes through) and a prefetch of the dataset through the link (``cache_ops.prefetch``, what
   ``HybridPrefetchOperator`` runs);
4. part of the table only in S3: ``--s3-files`` files moved HDFS -> S3 after the tier was filled (their copies
   stale, so cold), the rest warm: the native plan (local tier + httpfs) on the shaped link, with the S3 link
   unshaped, and with ``s3_native`` off (the S3 files through the bridge), against the local directory.

Every DuckDB run uses a new connection and a new ``HybridFileSystem`` (no engine-side caching carried over),
and the query results of all runs are checked to be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOUNT = "bench_lake"
TABLE_PATH = "tpcds/store_sales"
QUERY = """
SELECT ss_store_sk,
       count(*)                       AS sales,
       sum(ss_quantity)               AS quantity,
       round(sum(ss_net_paid), 2)     AS net_paid,
       round(avg(ss_sales_price), 4)  AS avg_price,
       count(DISTINCT ss_customer_sk) AS customers
FROM {relation}
WHERE ss_sold_date_sk IS NOT NULL
GROUP BY ss_store_sk
ORDER BY ss_store_sk NULLS LAST
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale-factor", type=float, default=1.0, help="TPC-DS scale factor (1 = ~150 MB)")
    parser.add_argument("--files", type=int, default=12, help="Parquet files of store_sales")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every request on the link")
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="link cap in MB/s (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the warm and local queries (best kept)")
    parser.add_argument("--prefetch-concurrency", type=int, default=8)
    parser.add_argument("--s3-files", type=int, default=4, help="files moved to S3 for the split-table case")
    parser.add_argument("--work-dir", help="keep data here (default: a temporary directory, removed)")
    return parser.parse_args(argv)


def setup_environment(work: Path) -> None:
    """A private AIRFLOW_HOME; must run before Airflow is imported."""
    home = work / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    sys.path.insert(0, str(ROOT))


def write_dataset(local_dir: Path, scale_factor: float, files: int, work: Path) -> tuple[str, int]:
    """store_sales as Parquet under ``local_dir/tpcds/store_sales``; returns (description, rows)."""
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.query.tpcds import TpcdsExtensionError, write_tpcds

    mount = HybridMount.from_options("bench_local", {"members": {"local": {"uri": f"file://{local_dir}"}}})
    try:
        lake = write_tpcds(mount, tables=("store_sales",), scale_factor=scale_factor, files_per_table=files,
                           ddl=False, work_dir=str(work))
        return f"TPC-DS store_sales SF{scale_factor:g}", lake.tables["store_sales"].rows
    except TpcdsExtensionError as err:
        print(f"(TPC-DS extension unavailable: {err}; writing synthetic store_sales rows with DuckDB)")
    import duckdb

    rows = int(2_880_404 * scale_factor)
    target = local_dir / TABLE_PATH
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    per_file = -(-rows // files)
    for i in range(files):
        start, stop = i * per_file, min((i + 1) * per_file, rows)
        con.execute(f"""
            COPY (SELECT 2450816 + (r // 1600)::INT AS ss_sold_date_sk, (hash(r) % 100000)::INT AS ss_customer_sk,
                         (hash(r * 7) % 12)::INT + 1 AS ss_store_sk, (hash(r * 3) % 100)::INT + 1 AS ss_quantity,
                         (hash(r * 5) % 20000) / 100.0 AS ss_sales_price, (hash(r * 11) % 500000) / 100.0 AS ss_net_paid,
                         hash(r * 13) AS ss_ticket_number, repeat('x', (hash(r) % 20)::INT) AS ss_filler
                  FROM range({start}, {stop}) t(r))
            TO '{target}/part-{i:05d}.parquet' (FORMAT parquet)""")
    return f"synthetic store_sales ({rows} rows)", rows


def upload(local_dir: Path, hdfs_store) -> None:
    for path in sorted((local_dir / TABLE_PATH).glob("*.parquet")):
        with open(path, "rb") as stream:
            hdfs_store.write(f"{TABLE_PATH}/{path.name}", stream, size_hint=path.stat().st_size)


def mount_connection(connections: dict, work: Path, listing_sync_interval: float = 0) -> dict:
    extra = json.loads(json.dumps(connections["onprem_union"]["extra"]))
    extra["cache"] = {
        "tiers": [{"alias": "SSD", "uri": f"file://{work}/tier-ssd", "quota": "4GB"}],
        "catalog_url": f"sqlite:///{work}/catalog.db",
        "metadata_sync_interval": 60,
        "listing_sync_interval": listing_sync_interval,
        # opt-in (default 0): a ranged read of a file whose whole-file load is running waits for it
        # instead of fetching the same bytes over the link twice
        "join_running_load_up_to": "256MB",
    }
    return {"conn_type": "hybrid_mount", "extra": extra}


def source_stats(client) -> tuple[int, int]:
    """(requests, body bytes) that crossed the shaped links so far."""
    stats = client.stats()["shaping"]
    return (sum(int(link.get("requests", 0)) for link in stats.values()),
            sum(int(link.get("throttled_bytes", 0)) for link in stats.values()))


def operations(client) -> dict[str, int]:
    """Requests per server operation so far (``webhdfs LISTSTATUS_BATCH``, ``s3 HeadObject``...)."""
    stats = client.stats()
    return {f"{server} {op}": n for server in ("webhdfs", "s3") for op, n in stats[server].items()}


def ops_moved(before: dict[str, int], after: dict[str, int]) -> str:
    moved = {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}
    return ", ".join(f"{op} {n}" for op, n in sorted(moved.items())) or "none"


def run_query(source: str, filesystem=None, relation: str | None = None) -> tuple[float, list]:
    """The query over ``read_parquet(source)``, or over ``relation`` (a table expression) when given."""
    import duckdb

    relation = relation or f"read_parquet('{source}')"

    con = duckdb.connect()
    try:
        con.execute("SET enable_external_file_cache = false")  # no engine-side cache across queries
        if filesystem is not None:
            con.register_filesystem(filesystem)
        started = time.perf_counter()
        rows = con.execute(QUERY.format(relation=relation)).fetchall()
        return time.perf_counter() - started, rows
    finally:
        con.close()


def run_planned(fs, s3_native: bool = True, speculate: bool = False) -> tuple[float, list, dict]:
    """The query as DuckDBQuery plans it (:mod:`airflow_hybrid.query.native`): ``(seconds, rows, files per
    route)``, planning (listing, catalog, lease), httpfs set-up and the check of the versions read included.
    With ``speculate``, a table warm in the catalog is read from its copies while the freshness check runs, and
    the time includes waiting for the check (and the run again over the checked plan, when it refutes it)."""
    import duckdb

    from airflow_hybrid.query.duckdb_engine import planned_source
    from airflow_hybrid.query.duckdb_s3 import HttpfsAccess
    from airflow_hybrid.query.native import TablePlanner

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    started = time.perf_counter()
    planner = TablePlanner(fs, "bench", s3=HttpfsAccess() if s3_native else None)
    try:
        con.execute("SET enable_external_file_cache = false")  # no engine-side cache across queries
        con.register_filesystem(fs)
        plan = planner.plan("store_sales", f"hybrid://{MOUNT}/{TABLE_PATH}", speculate=speculate)
        if plan.s3_targets:
            planner.s3.configure(con)
            planner.s3.start_log(con)
        rows = con.execute(QUERY.format(relation=planned_source(plan))).fetchall()
        confirmed, checked = planner.confirm(plan)
        if not confirmed:
            raise RuntimeError(f"the warm table changed under the benchmark: {checked}")
        if plan.s3_targets and (mismatches := planner.s3.verify(con, plan.s3_targets)):
            raise RuntimeError(f"httpfs read another version: {mismatches[0]}")
        return time.perf_counter() - started, rows, plan.summary()
    finally:
        con.close()
        planner.close()


def move_to_s3(mount, local_dir: Path, names: list[str]) -> int:
    """A migration HDFS -> S3 of the files ``names`` of the table (their cache copies become stale); bytes."""
    moved = 0
    for name in names:
        path = local_dir / TABLE_PATH / name
        with open(path, "rb") as stream:
            mount.members["s3"].write(f"{TABLE_PATH}/{name}", stream, size_hint=path.stat().st_size)
        mount.members["hdfs"].delete(f"{TABLE_PATH}/{name}")
        moved += path.stat().st_size
    return moved


def hybrid_filesystem():
    from airflow_hybrid.mount.filesystem import HybridFileSystem

    return HybridFileSystem(skip_instance_cache=True)


def close_filesystem(fs) -> None:
    for mount in fs._mounts.values():
        mount.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="hybrid-bench-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    setup_environment(work)

    import duckdb

    from airflow_hybrid.cache import ops as cache_ops
    from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.values import format_bytes

    state_dir = work / "devstack"
    local_dir = work / "local"
    devstack_up(state_dir, data_dir=work / "devstack-data")
    try:
        client = DevStackClient.from_state_dir(state_dir)
        connections = client.connections()
        os.environ.update(airflow_env(connections))
        os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"] = json.dumps(mount_connection(connections, work))

        print(f"Generating the dataset in {local_dir} ...", flush=True)
        described, rows = write_dataset(local_dir, args.scale_factor, args.files, work)
        files = sorted((local_dir / TABLE_PATH).glob("*.parquet"))
        total = sum(p.stat().st_size for p in files)
        mount = HybridMount.from_conn_id(MOUNT)
        upload(local_dir, mount.members["hdfs"])  # at full speed: the link is shaped only from here on

        bandwidth = args.bandwidth_mb * 1e6
        client.shaping.configure("all", latency_ms=args.latency_ms, bandwidth=bandwidth)
        hybrid = f"hybrid://{MOUNT}/{TABLE_PATH}/*.parquet"
        local = f"{local_dir}/{TABLE_PATH}/*.parquet"
        print(f"\n{described}: {len(files)} Parquet files, {format_bytes(total)}, {rows:,} rows")
        print(f"mount {MOUNT}: HDFS (WebHDFS devstack) + S3 (moto), read priority s3,hdfs; data on HDFS")
        print(f"link: {args.latency_ms:g} ms per request, {args.bandwidth_mb:g} MB/s shared (both links); "
              f"cache tier: local directory; DuckDB {duckdb.__version__}, {os.cpu_count()} CPUs")
        print("query: " + " ".join(QUERY.format(relation="read_parquet('hybrid://.../store_sales/*.parquet')").split()))
        print()

        # The process's S3 client (shared by every mount of the connection, stores/s3/clients.py) is built once per
        # process; built here, so the cold run measures a cold cache, not a new process (bench_startup measures that).
        started = time.perf_counter()
        _ = mount.members["s3"].client
        client_build = time.perf_counter() - started

        # cold: empty cache; ranged reads cross the link, whole files load into the tier alongside
        fs = hybrid_filesystem()
        requests0, bytes0 = source_stats(client)
        cold_before = operations(client)
        cold, cold_rows = run_query(hybrid, fs)
        requests1, bytes1 = source_stats(client)
        cold_ops = ops_moved(cold_before, operations(client))
        started = time.perf_counter()
        fs.mount(MOUNT).cache.wait_for_background_loads()
        fill_wait = time.perf_counter() - started
        requests2, bytes2 = source_stats(client)
        close_filesystem(fs)
        cached = sum(1 for e in mount.cache.entries(TABLE_PATH) if e.state == "ready")

        # The baselines run between the runs they are compared with (this machine's speed drifts by tens of
        # percent between seconds): DuckDB on the local directory before every warm run, the fsspec floor before
        # every bridge run. A ratio compares the best of a variant's runs with the best of the baseline runs
        # made between them (as many).
        baseline: dict[str, list] = {}
        baseline_rows: dict[str, list] = {}

        def baseline_run(name: str, variant: str) -> None:
            source, fs = (local, None) if name == "local" else (f"benchlocal://{local}", _local_fsspec())
            elapsed, baseline_rows[name] = run_query(source, fs)
            baseline.setdefault(f"{name} {variant}", []).append(elapsed)

        def best_baseline(name: str, variant: str) -> float:
            return min(baseline[f"{name} {variant}"])

        def warm_runs(variant: str) -> tuple[list[float], list, str]:
            times, rows, ops = [], None, ""
            for _ in range(args.repeat):
                baseline_run("local", variant)
                baseline_run("fsspec", variant)
                fs = hybrid_filesystem()
                before = operations(client)
                elapsed, rows = run_query(hybrid, fs)
                ops = ops_moved(before, operations(client))
                times.append(elapsed)
                close_filesystem(fs)
            return times, rows, ops

        def native_runs(variant: str, repeat: int, s3_native: bool = True,
                        speculate: bool = False) -> tuple[list[float], list, str, int, dict]:
            """What DuckDBQuery does: the table's files resolved when the query starts (leased), fresh copies
            in the local tier read natively by DuckDB, files on S3 by DuckDB's httpfs, the rest through
            hybrid://."""
            times, rows, ops, requests, reads = [], None, "", 0, {}
            for _ in range(repeat):
                baseline_run("local", variant)
                fs = hybrid_filesystem()
                before, requests_before = operations(client), source_stats(client)[0]
                elapsed, rows, reads = run_planned(fs, s3_native, speculate)
                times.append(elapsed)
                ops = ops_moved(before, operations(client))
                requests = source_stats(client)[0] - requests_before
                close_filesystem(fs)
            return times, rows, ops, requests, reads

        warm_times, warm_rows, warm_ops = warm_runs("warm")
        native_times, native_rows, native_ops, native_requests, native_reads = native_runs("native", args.repeat)
        spec_times, spec_rows, spec_ops, spec_requests, spec_reads = native_runs("spec", args.repeat, speculate=True)
        warm_requests, warm_bytes = (now - then for now, then in zip(source_stats(client), (requests2, bytes2), strict=True))
        os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"] = json.dumps(mount_connection(connections, work, 60))
        listed_times, listed_rows, listed_ops = warm_runs("listed")
        native_runs("store", 1)  # stores the listing in the catalog
        nlisted_times, nlisted_rows, nlisted_ops, nlisted_requests, _ = native_runs("nlisted", args.repeat)
        os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"] = json.dumps(mount_connection(connections, work))

        local_rows, fsspec_rows = baseline_rows["local"], baseline_rows["fsspec"]

        if not (cold_rows == warm_rows == listed_rows == local_rows == fsspec_rows == native_rows == nlisted_rows == spec_rows):
            print("ERROR: the runs returned different results", file=sys.stderr)
            return 1

        cache_ops.free(mount, TABLE_PATH)
        before = source_stats(client)
        started = time.perf_counter()
        summary = cache_ops.prefetch(mount, f"{TABLE_PATH}/*.parquet", concurrency=args.prefetch_concurrency,
                                     progress_interval=3600)
        prefetch = time.perf_counter() - started
        prefetch_requests = source_stats(client)[0] - before[0]

        # part of the table only in S3, cold in the cache: a migration moved it there after the tier was filled
        on_s3 = [p.name for p in files[: args.s3_files]]
        client.shaping.configure("all", latency_ms=0, bandwidth=None)
        s3_bytes = move_to_s3(mount, local_dir, on_s3)
        client.shaping.configure("all", latency_ms=args.latency_ms, bandwidth=bandwidth)
        split_times, split_rows, split_ops, split_requests, split_reads = native_runs("split", args.repeat)
        client.shaping.configure("s3", latency_ms=0, bandwidth=None)
        fast_times, fast_rows, _, _, fast_reads = native_runs("fast", args.repeat)
        client.shaping.configure("s3", latency_ms=args.latency_ms, bandwidth=bandwidth)
        # the same through the bridge (which fills the cache from S3: once, then the new copies are freed)
        bridge_s3_times, bridge_s3_rows, _, _, bridge_s3_reads = native_runs("bridge_s3", 1, s3_native=False)
        mount.cache.wait_for_background_loads()
        mount.cache.free([f"{TABLE_PATH}/{name}" for name in on_s3])
        mount.close()
        if not (split_rows == fast_rows == bridge_s3_rows == local_rows):
            print("ERROR: the runs with part of the table on S3 returned different results", file=sys.stderr)
            return 1

        warm, listed = min(warm_times), min(listed_times)

        def local_for(variant: str) -> float:
            return best_baseline("local", variant)
        mib = 1024 * 1024
        print(f"cold   hybrid://, empty cache         {cold:8.2f} s   link: {requests1 - requests0} requests, "
              f"{(bytes1 - bytes0) / mib:.1f} MiB")
        print(f"       (whole-file loads finished     {fill_wait:+8.2f} s later; {cached}/{len(files)} files cached, "
              f"link total {requests2 - requests0} requests, {(bytes2 - bytes0) / mib:.1f} MiB)")
        print(f"       source requests of the cold run: {cold_ops}")
        print(f"       (the process's S3 client was built before it, once per process: {client_build:.2f} s)")
        print(f"warm   hybrid://, served from tier    {warm:8.2f} s   (best of {args.repeat}; link over the "
              f"{args.repeat} runs: {warm_requests} requests, {warm_bytes / mib:.2f} MiB)")
        print(f"       source requests of one warm run: {warm_ops}")
        print(f"warm   + listings from the catalog    {listed:8.2f} s   (best of {args.repeat}; "
              f"listing_sync_interval 60 s; source requests of one run: {listed_ops})")
        native, nlisted = min(native_times), min(nlisted_times)
        print(f"warm   native (DuckDBQuery's plan)    {native:8.2f} s   (best of {args.repeat}; files: {native_reads}; "
              f"source requests per query: {native_requests}: {native_ops})")
        spec = min(spec_times)
        print(f"warm   native, checked alongside      {spec:8.2f} s   (best of {args.repeat}; files: {spec_reads}; "
              f"planned from the catalog, the check running with the query, as DuckDBQuery does by default; "
              f"source requests per query: {spec_requests}: {spec_ops})")
        print(f"warm   native + catalog listings      {nlisted:8.2f} s   (best of {args.repeat}; "
              f"source requests per query: {nlisted_requests}: {nlisted_ops})")
        locals_run = [t for key, times in baseline.items() if key.startswith("local ") for t in times]
        print(f"local  DuckDB on a local directory    {min(locals_run):8.2f} s   (best of {len(locals_run)}: one before "
              f"each warm run; each ratio below takes the best of those before its variant's runs)")
        raw = (bytes1 - bytes0) / bandwidth
        print(f"\ncold/raw transfer ratio: {cold / raw:.2f}x (the {(bytes1 - bytes0) / mib:.1f} MiB it read take "
              f"{raw:.2f} s at {args.bandwidth_mb:g} MB/s; target <= 1.2x)")
        print(f"warm/local ratio: {warm / local_for('warm'):.2f}x (with listings from the catalog: "
              f"{listed / local_for('listed'):.2f}x)    cold/warm ratio: {cold / warm:.1f}x")
        print(f"native warm/local ratio: {spec / local_for('spec'):.2f}x by default, the check alongside the query "
              f"({native / local_for('native'):.2f}x with the check before it; with listings from the catalog: "
              f"{nlisted / local_for('nlisted'):.2f}x; target <= 1.1x)")
        split, fast, bridge_s3 = min(split_times), min(fast_times), min(bridge_s3_times)
        floor = s3_bytes / bandwidth + args.latency_ms / 1000
        print(f"\npart of the table only in S3 ({len(on_s3)} of {len(files)} files, {format_bytes(s3_bytes)}), "
              "cold in the cache, the rest warm in the local tier:")
        print(f"warm   native + httpfs, shaped link   {split:8.2f} s   (best of {args.repeat}; files: {split_reads}; "
              f"source requests per query: {split_requests}: {split_ops})")
        print(f"warm   native + httpfs, S3 unshaped   {fast:8.2f} s   (best of {args.repeat}; files: {fast_reads}; "
              "moto on loopback without latency or cap)")
        print(f"warm   native + bridge for S3 files   {bridge_s3:8.2f} s   (one run, shaped link; files: "
              f"{bridge_s3_reads}; s3_native=False)")
        print(f"warm(native+httpfs)/local ratio: {split / local_for('split'):.2f}x on the shaped link (its S3 bytes alone "
              f"take {floor:.2f} s: {split / max(floor, 1e-9):.2f}x that floor), {fast / local_for('fast'):.2f}x with S3 "
              f"unshaped; httpfs/bridge for the S3 files: {split / bridge_s3:.2f}x")
        fsspec_runs = baseline["fsspec warm"] + baseline["fsspec listed"]
        print(f"\ncontext: local directory through an fsspec LocalFileSystem registered in DuckDB: "
              f"{min(fsspec_runs):.2f} s (best of {len(fsspec_runs)}; the Python filesystem bridge hybrid:// goes "
              "through)")
        print(f"bridge/fsspec floor ratio: warm hybrid:// {warm / best_baseline('fsspec', 'warm'):.2f}x, with catalog "
              f"listings {listed / best_baseline('fsspec', 'listed'):.2f}x (target <= 1.3x)")
        print(f"context: prefetch of all files over the link (concurrency {args.prefetch_concurrency}): "
              f"{prefetch:.2f} s, {summary.loaded} files, {format_bytes(summary.loaded_bytes)}, "
              f"{summary.loaded_bytes / prefetch / 1e6:.1f} MB/s, {prefetch_requests} requests")
        return 0
    finally:
        devstack_down(state_dir)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def _local_fsspec():
    """fsspec's LocalFileSystem under its own protocol, so DuckDB goes through the Python bridge (for
    ``file://`` it would use its native reader)."""
    from fsspec.implementations.local import LocalFileSystem

    class BenchLocalFileSystem(LocalFileSystem):
        protocol = ("benchlocal",)

        @classmethod
        def _strip_protocol(cls, path):
            if isinstance(path, str) and path.startswith("benchlocal://"):
                path = path[len("benchlocal://") :]
            return LocalFileSystem._strip_protocol(path)

        def unstrip_protocol(self, name: str) -> str:
            return f"benchlocal://{self._strip_protocol(name)}"

    return BenchLocalFileSystem(skip_instance_cache=True)


if __name__ == "__main__":
    sys.exit(main())
