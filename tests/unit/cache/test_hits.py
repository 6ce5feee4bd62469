"""Hits recorded off the read path: batched, flushed before anything reads them, tolerant of failures."""

from __future__ import annotations

import logging
import threading

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.hits import HitRecorder
from airflow_hybrid.stores.local import LocalStore


def make_manager(tmp_path, clock):
    config = CacheConfig.from_options(
        {"cache": {"tiers": [{"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 1000}],
                   "catalog_url": f"sqlite:///{tmp_path}/catalog.db"}}, "lake")
    return CacheManager("lake", config, catalog=Catalog(config.catalog_url), clock=clock)


def test_hits_are_counted_once_each_and_seen_by_the_report_and_eviction(tmp_path):
    now = [1_800_000_000.0]
    manager = make_manager(tmp_path, lambda: now[0])
    source = LocalStore(str(tmp_path / "src"))
    for name in ("a", "b"):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / name).write_bytes(name.encode() * 300)
        info = source.info(name)
        manager.load(name, "hdfs", info, lambda name=name: source.open_read(name))
    try:
        for _ in range(5):
            now[0] += 1
            with manager.open_cached(manager.lookup("a")) as stream:
                stream.read()
        with manager.open_cached(manager.lookup("b")):
            pass
        now[0] += 1
        with manager.open_cached(manager.lookup("a")):  # a is the most recently used again
            pass
        (tmp_path / "src" / "c").write_bytes(b"c" * 400)  # past the high watermark: the LRU copy (b) goes
        manager.load("c", "hdfs", source.info("c"), lambda: source.open_read("c"))  # flushes the hits first
        assert manager.catalog.get("lake", "b") is None and manager.catalog.get("lake", "a") is not None

        report = manager.report().tier("MEM")
        assert (report.hits, report.files) == (7, 2)
        a = manager.catalog.get("lake", "a")
        assert (a.hits, a.last_access) == (6, now[0])
    finally:
        manager.close()


def test_touch_many_writes_a_batch_in_one_transaction_and_never_moves_last_access_back(tmp_path):
    now = [1_800_000_000.0]
    manager = make_manager(tmp_path, lambda: now[0])
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a" * 10)
    source = LocalStore(str(tmp_path / "src"))
    try:
        entry = manager.load("a", "hdfs", source.info("a"), lambda: source.open_read("a")).entry
        manager.catalog.touch_many([(entry, now[0] + 50), (entry, now[0] + 20)])
        assert manager.catalog.get("lake", "a").last_access == now[0] + 50
        assert manager.report().tier("MEM").hits == 2
    finally:
        manager.close()


def test_a_failing_write_is_logged_and_drops_only_that_batch(caplog):
    written, fail = [], [True]

    def write(batch):
        if fail[0]:
            raise RuntimeError("catalog down")
        written.extend(batch)

    recorder = HitRecorder(write)
    with caplog.at_level(logging.WARNING, logger="airflow_hybrid.cache.hits"):
        recorder.record("e1", 1.0)  # type: ignore[arg-type]
        recorder.flush()
    assert "could not record 1 cache hits: catalog down" in caplog.text
    fail[0] = False
    threads = [threading.Thread(target=recorder.record, args=(f"e{i}", float(i))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.flush()
    assert sorted(e for e, _ in written) == sorted(f"e{i}" for i in range(20))


def test_the_writer_gathers_a_burst_of_hits_into_one_transaction(monkeypatch):
    from airflow_hybrid.cache import hits

    monkeypatch.setattr(hits, "_LINGER_SECONDS", 60.0)  # the batch ends at _LINGER_HITS, not on time
    monkeypatch.setattr(hits, "_LINGER_HITS", 10)
    batches, written = [], threading.Event()

    def write(batch):
        batches.append([e for e, _ in batch])
        written.set()

    recorder = HitRecorder(write)
    for i in range(10):  # the first one starts the writer thread, which waits for the rest
        recorder.record(f"e{i}", float(i))  # type: ignore[arg-type]
    assert written.wait(timeout=60)
    recorder.flush()
    assert batches == [[f"e{i}" for i in range(10)]]
