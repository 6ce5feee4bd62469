"""The transfer engine between real stores: local directories and moto's S3 server over loopback."""

from __future__ import annotations

import io
import json
import logging
import os
import threading

import pytest

from airflow_hybrid.exceptions import SourceChangedError, TransferError, VerificationError
from airflow_hybrid.ops.checksums import CRC32C, CRC32C_COMPOSITE, crc32c, encode_crc32c
from airflow_hybrid.ops.copy import CopyRequest, TransferFailure, comparable_crc32c, copy_file, copy_many
from airflow_hybrid.ops.progress import ProgressTracker
from airflow_hybrid.stores.base import Checksum, FileInfo, Store
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.stores.s3.options import MiB
from airflow_hybrid.stores.s3.store import S3Store
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration

PART = 5 * MiB


@pytest.fixture
def s3(bucket):
    store = S3Store(f"s3://{bucket}/lake", aws_conn_id=AWS_CONN_ID,
                    options={"part_size": PART, "upload_concurrency": 2})
    yield store
    store.close()


@pytest.fixture
def hdfs(tmp_path, monkeypatch):
    """The devstack's WebHDFS server (namenode + data node on loopback) as an HdfsStore."""
    from airflow_hybrid.devstack.webhdfs import WebHdfsServer
    from airflow_hybrid.stores.hdfs.store import HdfsStore

    (tmp_path / "hdfs").mkdir()
    with WebHdfsServer(tmp_path / "hdfs") as server:
        monkeypatch.setenv("AIRFLOW_CONN_WEBHDFS_TRANSFER", json.dumps(
            {"conn_type": "webhdfs", "host": server.host, "port": server.port, "login": "hdfs"}))
        yield HdfsStore("hdfs:///warehouse", webhdfs_conn_id="webhdfs_transfer")


@pytest.fixture
def src(tmp_path):
    return LocalStore(str(tmp_path / "src"))


@pytest.fixture
def dst(tmp_path):
    return LocalStore(str(tmp_path / "dst"))


def make_file(store: LocalStore, path: str, size: int) -> bytes:
    data = os.urandom(size)
    target = store.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data


class Delegate(Store):
    """Test-only wrapper store that forwards everything to ``inner`` (subclasses alter one thing)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner.root_uri)
        self.inner = inner

    def info(self, path):
        return self.inner.info(path)

    def list(self, path):
        return self.inner.list(path)

    def checksum(self, path):
        return self.inner.checksum(path)

    def open_read(self, path, offset=0, length=None):
        return self.inner.open_read(path, offset, length)

    def write(self, path, stream, size_hint=None):
        return self.inner.write(path, stream, size_hint)

    def delete(self, path, recursive=False):
        return self.inner.delete(path, recursive)

    def mkdir(self, path):
        return self.inner.mkdir(path)


class ByteFlippingStore(Delegate):
    """Corrupts one byte on its way into the destination, as a faulty link or disk would."""

    def write(self, path, stream, size_hint=None):
        class Flip:
            flipped = False

            def read(self, size=-1):
                data = stream.read(size)
                if data and not Flip.flipped:
                    Flip.flipped = True
                    data = bytes([data[0] ^ 0x01]) + data[1:]
                return data

        return self.inner.write(path, Flip(), size_hint)


class ChangingSource(Delegate):
    """A source file that another writer appends to after the copy read its first chunk."""

    def open_read(self, path, offset=0, length=None):
        raw = self.inner.open_read(path, offset, length)
        local = self.inner.root / path

        class Appending:
            appended = False

            def read(self, size=-1):
                data = raw.read(size)
                if not Appending.appended:
                    Appending.appended = True
                    with open(local, "ab") as out:
                        out.write(b"late data")
                    st = os.stat(local)
                    os.utime(local, (st.st_atime, st.st_mtime + 5))
                return data

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                raw.close()

        return Appending()


# -- one file -------------------------------------------------------------------------------------------
def test_local_to_s3_multipart_is_verified_by_s3_crc32c(src, s3, s3_client, bucket):
    data = make_file(src, "sales/part-0.parquet", 2 * PART + 999)
    result = copy_file(src, "sales/part-0.parquet", s3, "sales/part-0.parquet")
    assert result.verified_by == CRC32C and result.size == len(data)
    assert result.crc32c == encode_crc32c(crc32c(data)) == s3.checksum("sales/part-0.parquet").value
    assert result.destination.extra["parts"] == 3
    assert s3_client.get_object(Bucket=bucket, Key="lake/sales/part-0.parquet")["Body"].read() == data
    assert list(s3.list_open_uploads()) == []


def test_hdfs_to_s3_through_webhdfs(hdfs, src, s3, s3_client, bucket):
    data = make_file(src, "t/part-0.parquet", PART + 4321)
    hdfs.write("store_sales/part-0.parquet", io.BytesIO(data))
    planned = hdfs.info("store_sales/part-0.parquet")
    result = copy_file(hdfs, "store_sales/part-0.parquet", s3, "store_sales/part-0.parquet", expected=planned)
    assert result.verified_by == CRC32C and result.src_uri.startswith("hdfs://")
    assert s3_client.get_object(Bucket=bucket, Key="lake/store_sales/part-0.parquet")["Body"].read() == data


def test_local_to_s3_composite_checksum(src, bucket):
    composite = S3Store(f"s3://{bucket}", aws_conn_id=AWS_CONN_ID,
                        options={"part_size": PART, "checksum_type": "COMPOSITE"})
    make_file(src, "f.bin", PART + 1)
    assert copy_file(src, "f.bin", composite, "f.bin").verified_by == CRC32C_COMPOSITE


def test_s3_to_local_rereads_the_destination(src, s3, dst):
    data = make_file(src, "a/b.bin", 300_000)
    copy_file(src, "a/b.bin", s3, "a/b.bin")
    result = copy_file(s3, "a/b.bin", dst, "copy/b.bin")
    assert result.verified_by == "reread"  # a local directory keeps no checksum
    assert (dst.root / "copy/b.bin").read_bytes() == data
    assert result.source.extra["checksum"].value == result.crc32c  # the S3 source's own CRC32C agreed


def test_local_to_local_and_verify_modes(src, dst):
    data = make_file(src, "x.bin", 10_000)
    assert copy_file(src, "x.bin", dst, "x.bin").verified_by == "reread"
    assert copy_file(src, "x.bin", dst, "y.bin", verify="size").verified_by == "size"
    assert copy_file(src, "x.bin", dst, "z.bin", verify=False).verified_by == "none"
    with pytest.raises(VerificationError, match="exposes no CRC32C"):
        copy_file(src, "x.bin", dst, "w.bin", verify="checksum")
    assert not dst.exists("w.bin")
    assert (dst.root / "y.bin").read_bytes() == data
    with pytest.raises(ValueError, match="verify='sometimes'"):
        copy_file(src, "x.bin", dst, "v.bin", verify="sometimes")
    with pytest.raises(ValueError, match="onto itself"):
        copy_file(src, "x.bin", src, "x.bin")


@pytest.mark.parametrize("destination", ["s3", "s3-composite", "local"])
def test_corrupted_destination_is_detected_and_removed(destination, src, s3, dst, bucket):
    make_file(src, "c.bin", 4096 if destination == "local" else PART + 10)
    inner = {"s3": s3, "local": dst, "s3-composite": S3Store(
        f"s3://{bucket}/comp", aws_conn_id=AWS_CONN_ID, options={"checksum_type": "COMPOSITE", "part_size": PART})}
    inner = inner[destination]
    with pytest.raises(VerificationError, match="differ(s)? from the copied bytes|read back as") as err:
        copy_file(src, "c.bin", ByteFlippingStore(inner), "c.bin")
    assert "the copy was deleted" in str(err.value)
    assert not inner.exists("c.bin")


def test_source_bytes_disagreeing_with_its_stored_checksum(src, dst):
    make_file(src, "s.bin", 1000)

    class WrongChecksum(Delegate):
        def info(self, path):
            info = self.inner.info(path)
            return FileInfo(info.path, info.size, info.mtime, extra={"checksum": Checksum(CRC32C, "AAAAAA==")})

    with pytest.raises(VerificationError, match="differ from the source's stored CRC32C AAAAAA=="):
        copy_file(WrongChecksum(src), "s.bin", dst, "s.bin")
    assert not dst.exists("s.bin")


def test_comparable_checksums():
    assert comparable_crc32c(Checksum("CRC32C", encode_crc32c(0xDEADBEEF))) == 0xDEADBEEF
    assert comparable_crc32c(Checksum("COMPOSITE-CRC32C", "deadbeef")) == 0xDEADBEEF  # HDFS COMPOSITE_CRC
    assert comparable_crc32c(Checksum("CRC32C-COMPOSITE", "AAAAAA==-3")) is None
    assert comparable_crc32c(Checksum("MD5-of-0MD5-of-512CRC32C", "00" * 28)) is None
    assert comparable_crc32c(None) is None


def test_source_changed_mid_copy_is_detected(src, dst):
    make_file(src, "grow.bin", 50_000)
    with pytest.raises(SourceChangedError, match="changed during the copy"):
        copy_file(ChangingSource(src), "grow.bin", dst, "grow.bin")
    assert not dst.exists("grow.bin")


def test_source_differing_from_the_plan_or_gone(src, dst):
    make_file(src, "p.bin", 100)
    planned = src.info("p.bin")
    stale = FileInfo(path="p.bin", size=99, mtime=planned.mtime)
    with pytest.raises(SourceChangedError, match="changed during the copy"):
        copy_file(src, "p.bin", dst, "p.bin", expected=stale)
    assert copy_file(src, "p.bin", dst, "p.bin", expected=planned).size == 100
    src.delete("p.bin")
    with pytest.raises(SourceChangedError, match="no longer exists"):
        copy_file(src, "p.bin", dst, "p2.bin", expected=planned)
    with pytest.raises(FileNotFoundError):
        copy_file(src, "p.bin", dst, "p3.bin")


def test_destination_failure_names_both_ends(src, moto_endpoint):
    make_file(src, "f.bin", 10)
    missing = S3Store("s3://no-such-bucket-for-transfer/x", aws_conn_id=AWS_CONN_ID)
    with pytest.raises(TransferError, match=r"f.bin -> s3://no-such-bucket-for-transfer/x/f.bin: FileNotFoundError"):
        copy_file(src, "f.bin", missing, "f.bin")


# -- many files -----------------------------------------------------------------------------------------
def test_copy_many_streams_its_input_and_reports_failures(src, s3, caplog):
    sizes = {f"many/{i:03d}.bin": 1000 + i for i in range(40)}
    for path, size in sizes.items():
        make_file(src, path, size)
    concurrency = 3
    lock = threading.Lock()
    counts = {"pulled": 0, "finished": 0, "max_ahead": 0}
    tracker = ProgressTracker(total_files=41, total_bytes=sum(sizes.values()), interval=0)

    def requests():
        for path in [*sizes, "many/missing.bin"]:
            with lock:
                counts["pulled"] += 1
                counts["max_ahead"] = max(counts["max_ahead"], counts["pulled"] - counts["finished"])
            yield CopyRequest(src, path, s3, path)

    def on_progress(outcome):
        with lock:
            counts["finished"] += 1
        tracker(outcome)

    with caplog.at_level(logging.INFO, logger="airflow_hybrid.ops.copy"):
        summary = copy_many(requests(), concurrency=concurrency, on_progress=on_progress)
    assert (summary.files, summary.bytes, summary.failed) == (40, sum(sizes.values()), 1)
    failure = summary.failures[0]
    assert isinstance(failure, TransferFailure) and failure.error == "FileNotFoundError"
    assert failure.src_uri.endswith("many/missing.bin")
    assert counts["max_ahead"] <= 2 * concurrency + 1
    assert (tracker.files, tracker.failed) == (40, 1)
    assert sorted(e.path for e in s3.walk_files("many")) == sorted(sizes)
    assert summary.to_dict()["failures"][0]["error"] == "FileNotFoundError"
    assert summary.throughput > 0
    assert any("40/41 files" in r.getMessage() for r in caplog.records)


def test_copy_many_retries_transient_failures(src, dst):
    make_file(src, "t.bin", 100)

    class FlakyOnce(Delegate):
        calls = 0

        def write(self, path, stream, size_hint=None):
            FlakyOnce.calls += 1
            if FlakyOnce.calls == 1:
                raise ConnectionResetError("connection reset by peer")
            return self.inner.write(path, stream, size_hint)

    summary = copy_many([(src, "t.bin", FlakyOnce(dst), "t.bin")], attempts=2)
    assert (summary.files, summary.failed, FlakyOnce.calls) == (1, 0, 2)


# -- progress -------------------------------------------------------------------------------------------
def test_progress_tracker_rate_eta_and_interval():
    now = [100.0]
    lines = []

    class Capture(logging.Logger):
        def info(self, msg, *args, **kwargs):
            lines.append(msg % args)

    tracker = ProgressTracker(total_files=4, total_bytes=4 * MiB, interval=10, logger=Capture("t"),
                              clock=lambda: now[0])
    now[0] = 102.0
    tracker.add(files=1, nbytes=MiB)  # 2 s in: not yet due
    assert lines == []
    now[0] = 110.0
    tracker.add(files=1, nbytes=MiB)
    assert lines == ["Transfer: 2/4 files, 2.0 MiB/4.0 MiB, 204.8 KiB/s, ETA 0:00:10"]
    now[0] = 115.0
    tracker.add(failed=1)
    assert len(lines) == 1  # 5 s since the last line
    assert tracker.maybe_log(force=True).endswith("1 failed, ETA 0:00:15")


def test_if_absent_copy_leaves_an_existing_destination_alone(src, s3, s3_client, bucket):
    data = make_file(src, "e.bin", 1000)
    result = copy_file(src, "e.bin", s3, "e.bin", if_absent=True)
    assert result.verified_by == CRC32C and result.destination.extra["checksum"].value == result.crc32c
    make_file(src, "e.bin", 1000)  # new content, same name
    with pytest.raises(FileExistsError):
        copy_file(src, "e.bin", s3, "e.bin", if_absent=True)
    assert s3_client.get_object(Bucket=bucket, Key="lake/e.bin")["Body"].read() == data  # neither replaced nor deleted
