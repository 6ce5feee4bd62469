"""One bounded thread pool: work over a streamed input of any length in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    concurrency: int,
    *,
    window: int | None = None,
    ordered: bool = False,
    name: str = "worker",
) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for each of ``items``, computed on ``concurrency`` threads.

    At most ``window`` (default ``2 * concurrency``) items are taken from ``items`` ahead of the results
    consumed, so a streamed listing of any length runs in bounded memory (``Executor.map`` takes them all
    at once). Results come as they complete, or in the order of ``items`` with ``ordered``. An exception of
    ``fn`` is raised where its result comes; leaving early (an exception, ``close``) cancels what has not
    started and waits for what has.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be at least 1")
    limit = window or 2 * concurrency
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name) as pool:
        queue: deque[tuple[T, Future[R]]] = deque()
        pending: dict[Future[R], T] = {}

        def take() -> Iterator[tuple[T, R]]:
            if ordered:
                item, future = queue.popleft()
                yield item, future.result()
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f in done]:  # those done, in the order they were taken
                yield pending.pop(future), future.result()

        try:
            for item in items:
                while len(queue if ordered else pending) >= limit:
                    yield from take()
                future = pool.submit(fn, item)
                if ordered:
                    queue.append((item, future))
                else:
                    pending[future] = item
            while queue or pending:
                yield from take()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
