"""The services some tests need beside Python (PostgreSQL, Apache Hadoop), and what happens when one is missing.

``scripts/bootstrap.sh --test`` (run by ``make test``) installs and starts them. A test that needs one calls
:func:`unavailable` when it is missing: under ``CI=true`` that is a **failure** (a CI run never passes by
skipping what it could not reach); on a developer's machine it is a skip that says what to run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn, Protocol, TypeVar

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
#: The role and database that scripts/services.sh creates (the role may create more databases).
PG_URL = os.environ.get("HYBRID_TEST_PG_URL", "postgresql+psycopg2://hybrid:hybrid@127.0.0.1:5432/hybrid_test")


def unavailable(what: str) -> NoReturn:
    """Fail under CI, skip elsewhere, naming what is missing and how to start it."""
    message = f"{what}; `bash scripts/bootstrap.sh --test` installs and starts the tests' services"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


class _Server(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


@contextlib.contextmanager
def running(server: _S, what: str, start_error: type[Exception]) -> Iterator[_S]:
    """``server`` started for the block and stopped after it; a ``start_error`` at start is :func:`unavailable`."""
    try:
        server.start()
    except start_error as error:
        unavailable(f"{what} could not be started: {error}")
    try:
        yield server
    finally:
        server.stop()


def postgres_url() -> str:
    """:data:`PG_URL` once it answers (else :func:`unavailable`)."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as err:
        unavailable(f"PostgreSQL is not reachable at {PG_URL} ({str(err.orig).strip()})")
    finally:
        engine.dispose()
    return PG_URL
