"""ResumableReader: a byte range reopened at the current offset when its connection drops, with bounded attempts.

The stores' own tests drop real connections (moto's S3, both HDFS servers); these drive every branch with
bodies that fail on cue.
"""

from __future__ import annotations

import io

import pytest

from airflow_hybrid.ops.reader import ResumableReader
from airflow_hybrid.stores.base import StoreError

DATA = bytes(range(256)) * 40  # 10240 bytes


class Body:
    """``DATA[start:end]`` that raises ``fail`` (or ends early) after ``cut`` bytes."""

    def __init__(self, start: int, end: int, cut: int | None = None, fail: BaseException | None = None) -> None:
        self._data = io.BytesIO(DATA[start:end])
        self._cut = cut
        self._fail = fail
        self.closed = False

    def read(self, size: int) -> bytes:
        if self._cut is not None and self._data.tell() >= self._cut:
            if self._fail is not None:
                raise self._fail
            return b""
        limit = size if self._cut is None else min(size, self._cut - self._data.tell())
        return self._data.read(limit)

    def close(self) -> None:
        self.closed = True


class Server:
    """``open_at`` over ``DATA``: the n-th open's body is cut as ``cuts[n]`` says; records every open."""

    def __init__(self, cuts: list[tuple[int | None, BaseException | None]] | None = None,
                 announce: bool = True) -> None:
        self.cuts = list(cuts or [])
        self.announce = announce
        self.opens: list[tuple[int, int | None]] = []
        self.bodies: list[Body] = []

    def __call__(self, offset: int, length: int | None):
        self.opens.append((offset, length))
        end = len(DATA) if length is None else min(len(DATA), offset + length)
        if offset >= len(DATA):
            return None
        cut, fail = self.cuts.pop(0) if self.cuts else (None, None)
        body = Body(offset, end, cut, fail)
        self.bodies.append(body)
        return body, (end - offset if self.announce else None)


def reader(server: Server, **kwargs) -> ResumableReader:
    kwargs.setdefault("dropped", lambda error: isinstance(error, ConnectionError))
    return ResumableReader(server, name="mem://data", delay=lambda attempt: 0.0, **kwargs)


def test_a_dropped_connection_is_reopened_at_the_current_offset():
    server = Server([(1000, ConnectionResetError("reset")), (500, TimeoutError("not a drop here"))])
    with pytest.raises(TimeoutError), reader(server, offset=100, length=5000) as stream:
        stream.read()
    server = Server([(1000, ConnectionResetError("reset")), (None, None)])
    with reader(server, offset=100, length=5000) as stream:
        assert stream.read() == DATA[100:5100]
        assert stream.tell() == 5100
    assert server.opens == [(100, 5000), (1100, 4000)]
    assert server.bodies[0].closed and server.bodies[1].closed


def test_a_body_that_ends_before_its_announced_length_is_a_drop():
    server = Server([(700, None)])  # ends quietly after 700 bytes of 10240
    with reader(server) as stream:
        assert stream.read() == DATA
    assert server.opens == [(0, None), (700, None)]


def test_without_an_announced_length_an_empty_read_is_the_end():
    server = Server([(700, None)], announce=False)
    with reader(server) as stream:
        assert stream.read() == DATA[:700]
        assert stream.read(10) == b""
    assert server.opens == [(0, None)]


def test_attempts_are_bounded_and_count_again_after_progress():
    drop = (0, ConnectionResetError("reset"))
    failed = r"mem://data: read failed at offset 0 after 3 attempts: reset"
    with reader(Server([drop, drop, drop]), max_attempts=3) as stream, pytest.raises(StoreError, match=failed):
        stream.read(10)
    # A drop, 100 bytes, then two drops in a row: four in all but never three in a row, so the read completes.
    progress = (100, ConnectionResetError("reset"))
    with reader(Server([drop, progress, drop, (None, None)]), max_attempts=3) as stream:
        assert stream.read() == DATA


def test_errors_that_are_not_drops_are_raised_as_they_are():
    with reader(Server([(0, PermissionError("denied"))])) as stream, pytest.raises(PermissionError):
        stream.read(1)


def test_seek_reopens_lazily_and_seek_end_is_the_end_of_the_range():
    server = Server()
    with reader(server, offset=10, length=100, size=lambda: len(DATA)) as stream:
        assert stream.seekable()
        assert stream.seek(-5, io.SEEK_END) == 105
        assert server.opens == [(10, 100)]  # not reopened until read
        assert stream.read() == DATA[105:110]
        assert server.opens == [(10, 100), (105, 5)]
        assert stream.seek(200) == 200 and stream.read() == b""  # past the range: nothing, no request
        assert len(server.opens) == 2
        assert stream.seek(-190, io.SEEK_CUR) == 10 and stream.read(3) == DATA[10:13]


def test_past_the_end_reads_nothing():
    with reader(Server(), offset=len(DATA) + 5) as stream:
        assert stream.read() == b"" and stream.read(1) == b""


def test_without_a_size_the_reader_is_not_seekable():
    with reader(Server()) as stream:
        assert not stream.seekable()
        with pytest.raises(io.UnsupportedOperation):
            stream.seek(0)


@pytest.mark.parametrize(("offset", "length"), [(-1, None), (0, -1)])
def test_a_negative_range_is_refused(offset, length):
    with pytest.raises(ValueError, match="mem://data: negative read"):
        reader(Server(), offset=offset, length=length)


def test_an_already_opened_body_is_used_first():
    server = Server()
    first = Body(0, len(DATA), cut=50)  # ends early: resumed through open_at
    with reader(server, opened=(first, len(DATA))) as stream:
        assert stream.read() == DATA
    assert server.opens == [(50, None)] and first.closed
