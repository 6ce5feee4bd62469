"""Benchmark: TPC-DS on Spark in the cloud, reading remote HDFS across a WAN link vs a warm S3 cache tier.

One run prints the figures (nothing is asserted about speed)::

    .venv/bin/python bench/bench_cloud.py [--scale-factor 1] [--queries 3,52] [--repeat 3]
        [--latency-ms 20] [--bandwidth-mb 50] [--store-sales-files 4]

Needs ``pyspark`` next to the project (``uv pip install pyspark``), Java 17 and ``jvm/target/classpath.txt``
(for the S3A jars, see ``bench/_spark.py``). What it does:

1. starts the devstack (WebHDFS + S3 servers) in a background process, generates TPC-DS ``store_sales``,
   ``date_dim`` and ``item`` (``airflow_hybrid.query.tpcds``) as Parquet in a local directory and uploads them
   to HDFS (at full speed); then shapes only the WebHDFS link like a WAN (latency per request, bandwidth cap),
   while S3 plays the bucket in the compute's region (no latency; a 1 TB/s cap set only to count its bytes);
2. starts one local Spark session (``local[N]``) for the whole run, and warms its JVM once with another query
   (``--warmup-query``) on the local files;
3. per query, best of ``--repeat`` runs, each one building its table views again (so a run lists the
   directories and reads the footers, as a fresh job would), in this order:

   * local:   the Parquet files on local disk (``file://``), the floor;
   * remote:  the same files on HDFS, read by Spark directly over the shaped link (``webhdfs://``);
   * warming: ``cache.ops.prefetch(mount, ..., tier="S3")``: the mount copies the tables over the link into
     its cache's S3 tier (what ``HybridPrefetchOperator`` runs), timed once;
   * warm:    the warm copies in the S3 tier read by Spark over ``s3a://``; their URIs come from
     ``CacheManager.warm_uri`` (one directory per table), else the resolver, else the catalog's entries (one
     URI per cached file), and the output says which;

and checks that every run of a query returned the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
MOUNT = "cloud_lake"
BASE = "tpcds"
TABLES = ("store_sales", "date_dim", "item")
S3_TIER = "S3"
CACHE_PREFIX = "cache"
#: A cap far above anything loopback carries, set on the S3 link only so that the devstack counts its bytes.
COUNTING_BANDWIDTH = 1e12


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale-factor", type=float, default=1.0, help="TPC-DS scale factor")
    parser.add_argument("--store-sales-files", type=int, default=4, help="Parquet files of store_sales")
    parser.add_argument("--queries", default="3,52", help="TPC-DS query numbers, comma-separated")
    parser.add_argument("--warmup-query", type=int, default=55, help="run once on local files to warm the JVM")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every request on the HDFS link")
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="HDFS link cap in MB/s (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query and source (best kept)")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N]")
    parser.add_argument("--s3a-stream", default="classic", choices=("classic", "analytics", "prefetch"),
                        help="fs.s3a.input.stream.type; analytics caches blocks in memory across queries")
    parser.add_argument("--prefetch-concurrency", type=int, default=8)
    parser.add_argument("--work-dir", help="keep data here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    args.query_numbers = [int(q) for q in args.queries.split(",") if q.strip()]
    if not args.query_numbers or args.repeat < 1:
        parser.error("need at least one query and --repeat >= 1")
    return args


def setup_environment(work: Path) -> None:
    """A private AIRFLOW_HOME; must run before Airflow is imported."""
    home = work / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))


def mount_connection(connections: dict, work: Path, aws_conn_id: str = "aws_default") -> dict:
    """The devstack's union mount with a cache whose only tier is S3 (the bucket near compute)."""
    extra = json.loads(json.dumps(connections["onprem_union"]["extra"]))
    bucket = urlsplit(extra["members"]["s3"]["uri"]).netloc
    extra["cache"] = {
        "tiers": [{"alias": S3_TIER, "uri": f"s3://{bucket}/{CACHE_PREFIX}", "conn_id": aws_conn_id,
                   "quota": "10GB"}],
        "catalog_url": f"sqlite:///{work}/catalog.db",
    }
    return {"conn_type": "hybrid_mount", "extra": extra}


def write_dataset(local_dir: Path, scale_factor: float, store_sales_files: int, work: Path):
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.query.tpcds import write_tpcds

    mount = HybridMount.from_options("cloud_local", {"members": {"local": {"uri": f"file://{local_dir}"}}})
    files = {"store_sales": store_sales_files, "date_dim": 1, "item": 1}
    return write_tpcds(mount, base_path=BASE, tables=TABLES, scale_factor=scale_factor, files_per_table=files,
                       ddl=False, work_dir=str(work))


def upload(local_dir: Path, hdfs_store) -> None:
    for table in TABLES:
        for path in sorted((local_dir / BASE / table).glob("*.parquet")):
            with open(path, "rb") as stream:
                hdfs_store.write(f"{BASE}/{table}/{path.name}", stream, size_hint=path.stat().st_size)


def link_counters(client) -> dict[str, tuple[int, int]]:
    """(requests, body bytes) per link so far."""
    stats = client.stats()["shaping"]
    return {name: (int(s.get("requests", 0)), int(s.get("throttled_bytes", 0))) for name, s in stats.items()}


def moved(before: dict, after: dict, link: str) -> tuple[int, int]:
    return after[link][0] - before[link][0], after[link][1] - before[link][1]


@dataclass
class Source:
    """Where Spark reads each table: one or more URIs per table."""

    name: str
    uris: dict[str, list[str]]
    note: str = ""
    times: dict[int, list[float]] = field(default_factory=dict)
    traffic: dict[int, tuple[int, int]] = field(default_factory=dict)  # one run: requests, bytes on its link
    link: str | None = None


def run_query(spark, source: Source, sql: str) -> tuple[float, list[tuple]]:
    """Register the tables' views afresh (listing + footers), run ``sql``, collect; returns (seconds, rows)."""
    started = time.perf_counter()
    for table, uris in source.uris.items():
        spark.read.parquet(*uris).createOrReplaceTempView(table)
    rows = [tuple(row) for row in spark.sql(sql).collect()]
    return time.perf_counter() - started, rows


def warm_uris(mount, tables: tuple[str, ...]) -> tuple[dict[str, list[str]], str]:
    """The S3 tier's copies of each table as ``s3a://`` URIs, and how they were found."""
    from airflow_hybrid.mount.resolver import CACHE_MEMBER, resolve_locations

    def s3a(uri: str) -> str:
        return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri

    cache = mount.cache
    found: dict[str, list[str]] = {}
    for how in ("CacheManager.warm_uri", "resolve_locations"):
        for table in tables:
            path = f"{BASE}/{table}"
            if how == "CacheManager.warm_uri":
                uri = cache.warm_uri(path)
            else:
                first = resolve_locations(mount, path)[0]
                uri = first.uri if first.member == CACHE_MEMBER else None
            if not uri:
                break
            found[table] = [s3a(uri)]
        else:
            return found, how
        found.clear()
    tier = cache.tiers[S3_TIER]
    for table in tables:
        path = f"{BASE}/{table}"
        entries = [e for e in cache.entries(path) if e.state == "ready" and e.tier == S3_TIER
                   and e.path.rsplit("/", 1)[0] == path]
        found[table] = sorted(s3a(tier.store.uri(e.location)) for e in entries)
    return found, "the catalog's entries (CacheManager.warm_uri and the resolver gave no warm URI)"


def probe_ranged_reads(mount, table: str = "store_sales", size: int = 64 * 1024, count: int = 5) -> dict:
    """Median seconds of one ``size``-byte ranged read from the middle of the table's largest file: at the
    HDFS member (over the shaped link) and at its copy in the S3 tier; and that file's size."""
    import statistics

    cache = mount.cache
    entries = [e for e in cache.entries(f"{BASE}/{table}") if e.state == "ready" and e.tier == S3_TIER]
    largest = max(entries, key=lambda e: e.size)
    offset = largest.size // 2
    readers = {
        "hdfs": lambda: mount.members["hdfs"].open_read(largest.path, offset=offset, length=size),
        "s3": lambda: cache.tiers[S3_TIER].open(largest.location, offset=offset, length=size),
    }
    medians = {}
    for name, opener in readers.items():
        times = []
        for _ in range(count):
            started = time.perf_counter()
            with opener() as stream:
                stream.read()
            times.append(time.perf_counter() - started)
        medians[name] = statistics.median(times)
    return {"file_size": largest.size, "read": size, **medians}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="hybrid-bench-cloud-"))
    work.mkdir(parents=True, exist_ok=True)
    setup_environment(work)

    from _spark import spark_session

    from airflow_hybrid.cache import ops as cache_ops
    from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.query.tpcds import tpcds_query
    from airflow_hybrid.values import format_bytes

    state_dir = work / "devstack"
    local_dir = work / "local"
    devstack_up(state_dir, data_dir=work / "devstack-data", with_parent=True)
    spark = None
    load_start = os.getloadavg()[0]
    try:
        client = DevStackClient.from_state_dir(state_dir)
        connections = client.connections()
        os.environ.update(airflow_env(connections))
        os.environ[f"AIRFLOW_CONN_{MOUNT.upper()}"] = json.dumps(mount_connection(connections, work))
        queries = {n: tpcds_query(n).strip().rstrip(";") for n in [*args.query_numbers, args.warmup_query]}

        print(f"Generating TPC-DS SF{args.scale_factor:g} in {local_dir} ...", flush=True)
        started = time.perf_counter()
        lake = write_dataset(local_dir, args.scale_factor, args.store_sales_files, work)
        generated = time.perf_counter() - started
        mount = HybridMount.from_conn_id(MOUNT)
        hdfs = mount.members["hdfs"]
        upload(local_dir, hdfs)  # at full speed: the link is shaped only from here on

        client.shaping.configure("webhdfs", latency_ms=args.latency_ms, bandwidth=args.bandwidth_mb * 1e6)
        client.shaping.configure("s3", latency_ms=0, bandwidth=COUNTING_BANDWIDTH)

        print("Starting Spark ...", flush=True)
        started = time.perf_counter()
        spark = spark_session(cores=args.cores, s3_endpoint=client.s3_endpoint, work_dir=work,
                              s3a_stream=args.s3a_stream)
        spark_startup = time.perf_counter() - started

        local = Source("local", {t: [f"file://{local_dir}/{BASE}/{t}"] for t in TABLES}, "Parquet on local disk")
        remote = Source(
            "remote",
            {t: [f"webhdfs://{client.webhdfs_host}:{client.webhdfs_port}{urlsplit(hdfs.uri(f'{BASE}/{t}')).path}"]
             for t in TABLES},
            "HDFS over the shaped link (webhdfs://)", link="webhdfs",
        )

        started = time.perf_counter()
        warmup_rows = run_query(spark, local, queries[args.warmup_query])[1]
        warmup = time.perf_counter() - started

        results: dict[int, list[tuple[str, list]]] = {n: [] for n in args.query_numbers}

        def measure(source: Source) -> None:
            for number in args.query_numbers:
                source.times[number] = []
                for _ in range(args.repeat):
                    before = link_counters(client)
                    elapsed, rows = run_query(spark, source, queries[number])
                    if source.link:
                        source.traffic[number] = moved(before, link_counters(client), source.link)
                    source.times[number].append(elapsed)
                    results[number].append((source.name, rows))

        measure(local)
        measure(remote)

        before = link_counters(client)
        started = time.perf_counter()
        summary = cache_ops.prefetch(mount, [f"{BASE}/{t}/*.parquet" for t in TABLES], tier=S3_TIER,
                                     concurrency=args.prefetch_concurrency, progress_interval=3600)
        warming = time.perf_counter() - started
        after = link_counters(client)
        warming_hdfs, warming_s3 = moved(before, after, "webhdfs"), moved(before, after, "s3")

        uris, how = warm_uris(mount, TABLES)
        warm = Source("warm", uris, f"S3 cache tier (s3a://), URIs from {how}", link="s3")
        measure(warm)
        probe = probe_ranged_reads(mount)
        mount.close()

        failures = []
        for number, runs in results.items():
            first_source, first = runs[0]
            failures += [f"q{number}: {name} differs from {first_source}" for name, rows in runs if rows != first]
        if failures or not warmup_rows:
            print("ERROR: the runs returned different results:\n  " + "\n  ".join(failures), file=sys.stderr)
            return 1

        import pyspark

        data_bytes = sum(t.bytes for t in lake.tables.values())
        print()
        print(f"TPC-DS SF{args.scale_factor:g} (generated in {generated:.0f} s): "
              + ", ".join(f"{t.name} {len(t.files)} files {format_bytes(t.bytes)} {t.rows:,} rows"
                          for t in lake.tables.values()))
        print(f"WAN link to HDFS (devstack WebHDFS): {args.latency_ms:g} ms per request, {args.bandwidth_mb:g} MB/s; "
              f"S3 (devstack, in-region): no latency, no cap")
        print(f"Spark {pyspark.__version__} local[{args.cores}] on {os.cpu_count()} CPU cores (load average "
              f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: other work shares them); "
              f"startup {spark_startup:.1f} s; JVM warm-up q{args.warmup_query} on local files {warmup:.1f} s")
        print(f"each time: best of {args.repeat} runs of (register views: list + footers; query; collect)")
        print()
        print(f"{'query':<7}{'local s':>9}{'remote s':>10}{'warm s':>9}{'remote/warm':>13}{'warm/local':>12}"
              f"{'remote link':>24}{'warm S3':>22}")
        for number in args.query_numbers:
            lo, re_, wa = (min(s.times[number]) for s in (local, remote, warm))
            (r_req, r_bytes), (w_req, w_bytes) = remote.traffic[number], warm.traffic[number]
            print(f"q{number:<6}{lo:9.2f}{re_:10.2f}{wa:9.2f}{re_ / wa:12.2f}x{wa / lo:11.2f}x"
                  f"{f'{r_req} req {format_bytes(r_bytes)}':>24}{f'{w_req} req {format_bytes(w_bytes)}':>22}")
        print("   all runs: " + "; ".join(
            f"{s.name} " + ", ".join(f"q{n} " + "/".join(f"{t:.2f}" for t in s.times[n]) for n in args.query_numbers)
            for s in (local, remote, warm)))
        print()
        print(f"sources: local {local.note}; remote {remote.note}; warm {warm.note}")
        print(f"warming: prefetch into the S3 tier (concurrency {args.prefetch_concurrency}): {warming:.2f} s, "
              f"{summary.loaded} files loaded ({format_bytes(summary.loaded_bytes)} of "
              f"{format_bytes(data_bytes)}), {summary.failed} failed; HDFS link {warming_hdfs[0]} requests "
              f"{format_bytes(warming_hdfs[1])}, S3 {warming_s3[0]} requests {format_bytes(warming_s3[1])}")
        for number in args.query_numbers:
            re_, wa = min(remote.times[number]), min(warm.times[number])
            saved = re_ - wa
            breakeven = f"{warming / saved:.1f} queries" if saved > 0 else "never (warm is not faster)"
            print(f"q{number}: warming = {warming / re_:.2f} remote queries; "
                  f"saves {saved:.2f} s a query, so it pays off after {breakeven}")
        print(f"context: one {format_bytes(probe['read'])} ranged read from the middle of a "
              f"{format_bytes(probe['file_size'])} store_sales file (median of 5, Python clients): HDFS over the "
              f"link {probe['hdfs'] * 1000:.0f} ms, S3 tier {probe['s3'] * 1000:.0f} ms (the devstack's S3 is moto, "
              f"which copies the whole object to answer a ranged GET); S3A input stream: {args.s3a_stream}")
        print("results: every run of each query returned the same rows "
              f"({', '.join(f'q{n} {len(results[n][0][1])} rows' for n in args.query_numbers)})")
        return 0
    finally:
        if spark is not None:
            spark.stop()
        devstack_down(state_dir)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
