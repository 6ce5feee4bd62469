"""ProgressTracker: bytes counted while files stream, a timer that logs mid-file, one rate, a clean stop.

The clock is injected and the timer is driven by :class:`ManualTicker`, so nothing depends on real time.
"""

from __future__ import annotations

import logging
import threading

import pytest

from airflow_hybrid.ops.copy import copy_many
from airflow_hybrid.ops.progress import EventTicker, ProgressReader, ProgressTracker, format_eta
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.values import format_bytes
from tests.unit.ops.progress_support import (
    DEADLINE,
    Clock,
    GatedSource,
    GatedStream,
    Lines,
    ManualTicker,
    progress_threads,
    rate_of,
)

MiB = 1024 * 1024


@pytest.fixture
def lines():
    handler = Lines(logging.getLogger("test.progress"))
    yield handler
    handler.close()


def tracker_for(lines, clock, ticker=None, **kwargs) -> ProgressTracker:
    return ProgressTracker(logger=lines.logger, clock=clock, ticker=ticker or ManualTicker(), **kwargs)


def test_the_timer_logs_a_line_mid_file_with_the_partial_bytes(lines):
    clock, ticker = Clock(), ManualTicker()
    tracker = tracker_for(lines, clock, ticker, total_files=2, total_bytes=40 * MiB, interval=10, label="Copy")
    with tracker:
        file = tracker.begin_file()
        file(4 * MiB)  # a 40 MiB file at 0.4 MiB/s: no file completes for a long time
        clock.now += 10
        ticker.tick()
        assert lines.messages == ["Copy: 0/2 files, 4.0 MiB/40.0 MiB, 409.6 KiB/s, ETA 0:01:30"]
        ticker.tick()  # woken early (no interval passed on the clock): no line
        assert len(lines.messages) == 1
        file(4 * MiB)
        clock.now += 10
        ticker.tick()
        assert lines.messages[-1] == "Copy: 0/2 files, 8.0 MiB/40.0 MiB, 409.6 KiB/s, ETA 0:01:20"
    assert not progress_threads()


def test_a_finished_file_replaces_its_streamed_bytes_and_late_or_retried_chunks_do_not_count(lines):
    clock = Clock()
    tracker = tracker_for(lines, clock, total_files=2, total_bytes=10, interval=3600)
    first, second = tracker.begin_file(), tracker.begin_file()
    first(3)
    second(4)
    assert (tracker.bytes_so_far, tracker.in_flight, tracker.files) == (7, 7, 0)
    second.reset()  # its attempt failed; the retry starts over
    second(1)
    assert tracker.bytes_so_far == 4
    tracker.add(files=1, nbytes=5, file=first)  # 5 bytes written for 3 read so far: the file's count wins
    first(100)  # after its end: ignored
    assert (tracker.files, tracker.bytes, tracker.in_flight, tracker.bytes_so_far) == (1, 5, 1, 6)


def test_totals_follow_files_that_failed_or_had_nothing_to_move(lines):
    tracker = tracker_for(lines, Clock(), total_files=4, total_bytes=400, interval=3600)
    tracker.add(files=1, nbytes=120, planned=100)  # grew since it was listed
    tracker.add(failed=1, planned=100)  # its bytes will not come
    tracker.exclude(files=1, nbytes=100)  # already fresh
    assert (tracker.total_files, tracker.total_bytes, tracker.bytes_so_far) == (3, 220, 120)


def test_rate_is_bytes_over_the_transfer_and_frozen_at_stop(lines):
    clock = Clock()
    tracker = tracker_for(lines, clock, total_files=1, total_bytes=8 * MiB, interval=10)
    clock.now += 50  # before the transfer (listing, pins): not in the rate
    tracker.start()
    file = tracker.begin_file()
    file(2 * MiB)
    clock.now += 4
    assert tracker.rate == 2 * MiB / 4
    tracker.add(files=1, nbytes=8 * MiB, file=file)
    clock.now += 4
    tracker.stop()
    clock.now += 100  # after the transfer: not in the rate either
    assert (tracker.elapsed, tracker.rate) == (8, MiB)
    assert tracker.maybe_log(force=True) == "Transfer: 1/1 files, 8.0 MiB/8.0 MiB, 1.0 MiB/s, ETA 0:00:00"


def test_a_line_logged_as_a_file_finishes_postpones_the_timer(lines):
    clock, ticker = Clock(), ManualTicker()
    tracker = tracker_for(lines, clock, ticker, total_files=3, total_bytes=3 * MiB, interval=10)
    with tracker:
        clock.now += 10
        tracker.add(files=1, nbytes=MiB)  # due: logged by the finishing file
        assert len(lines.messages) == 1
        assert tracker._due_in() == 10
        clock.now += 5
        ticker.tick()  # 5 s since that line: not due
        assert len(lines.messages) == 1
        assert tracker._due_in() == 5


def test_the_timer_thread_stops_when_the_operation_fails(lines):
    ticker = ManualTicker()
    tracker = tracker_for(lines, Clock(), ticker, interval=10, label="Failing")
    with pytest.raises(RuntimeError, match="boom"), tracker:
        assert [t.name for t in progress_threads()] == ["progress: Failing"]
        raise RuntimeError("boom")
    assert not progress_threads() and not tracker.running


def test_the_default_timer_waits_on_an_event_and_stops_at_once(lines):
    tracker = ProgressTracker(interval=3600, logger=lines.logger, label="Idle")  # a real EventTicker
    tracker.start()
    thread = progress_threads()[0]
    tracker.stop()  # joined: does not wait for the hour
    assert not thread.is_alive() and lines.messages == []
    ticker = EventTicker()
    ticker.stop()
    assert ticker.wait(3600) is True


def test_nested_starts_keep_one_timer_until_the_outermost_stop(lines):
    tracker = tracker_for(lines, Clock(), interval=10, label="Nested")
    with tracker:
        with tracker:
            pass
        assert tracker.running and len(progress_threads()) == 1
    assert not tracker.running and not progress_threads()


def test_no_timer_without_an_interval(lines):
    tracker = tracker_for(lines, Clock(), interval=0, label="Every file")
    with tracker:
        assert not progress_threads()
        tracker.add(files=1, nbytes=1)
    assert len(lines.messages) == 1


def test_a_failing_logger_does_not_end_the_timer(lines, caplog):
    clock, ticker = Clock(), ManualTicker()

    class Broken(logging.Logger):
        calls = 0

        def info(self, *args, **kwargs):
            Broken.calls += 1
            raise OSError("log disk full")

    tracker = ProgressTracker(interval=10, logger=Broken("broken"), clock=clock, ticker=ticker, label="Broken")
    with tracker:
        clock.now += 10
        ticker.tick()
        clock.now += 10
        ticker.tick()
    assert Broken.calls == 2 and not progress_threads()


def test_eta_format():
    assert [format_eta(s) for s in (0, 59.6, 3599, 3600 * 27 + 61)] == ["0:00:00", "0:01:00", "0:59:59", "27:01:01"]


def test_progress_reader_reports_every_chunk():
    counted = []
    reader = ProgressReader(GatedStream(b"x" * 10, chunk=4), counted.append)
    reader._raw.release()
    assert reader.read() == b"x" * 4 and reader.read(3) == b"x" * 3 and reader.read(100) == b"x" * 3
    assert reader.read() == b"" and counted == [4, 3, 3]


# -- the copy loop --------------------------------------------------------------------------------------
def test_copy_many_reports_bytes_per_chunk_and_its_summary_prints_the_trackers_rate(tmp_path, lines, caplog):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(b"b" * (4 * MiB))
    src, dst = GatedSource(f"file://{tmp_path}/src", chunk=MiB), LocalStore(f"file://{tmp_path}/dst")
    clock, ticker = Clock(), ManualTicker()
    tracker = tracker_for(lines, clock, ticker, total_files=1, total_bytes=4 * MiB, interval=10, label="Copy")
    result: dict = {}

    def copy() -> None:
        result["summary"] = copy_many([(src, "big.bin", dst, "big.bin")], verify="size", on_progress=tracker)

    with caplog.at_level(logging.INFO, logger="airflow_hybrid.ops.copy"):
        worker = threading.Thread(target=copy)
        worker.start()
        try:
            src.blocked("big.bin")  # 1 of its 4 MiB streamed
            clock.now += 10
            ticker.tick()
            assert lines.messages == ["Copy: 0/1 files, 1.0 MiB/4.0 MiB, 102.4 KiB/s, ETA 0:00:30"]
            clock.now += 10
        finally:
            src.release_all()
            worker.join(DEADLINE)
    summary = result["summary"]
    assert (summary.files, summary.bytes, summary.failed) == (1, 4 * MiB, 0)
    assert (tmp_path / "dst" / "big.bin").read_bytes() == b"b" * (4 * MiB)
    assert summary.elapsed == tracker.elapsed == 20 and summary.throughput == tracker.rate
    final = tracker.maybe_log(force=True)
    copied = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Copied 1 files"))
    assert final == "Copy: 1/1 files, 4.0 MiB/4.0 MiB, 204.8 KiB/s, ETA 0:00:00"
    assert rate_of(final) == rate_of(copied) == format_bytes(4 * MiB / 20)
    assert not progress_threads()
