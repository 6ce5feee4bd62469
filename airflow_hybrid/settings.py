"""Where the provider keeps its files: ``$AIRFLOW_HOME/hybrid`` (``AIRFLOW_HOME`` defaults to ``~/airflow``)."""

from __future__ import annotations

import os
from pathlib import Path


def airflow_home() -> Path:
    """``$AIRFLOW_HOME`` (``~`` expanded), or ``~/airflow`` when it is unset or empty, as Airflow reads it."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


def hybrid_home(*parts: str) -> Path:
    """``$AIRFLOW_HOME/hybrid`` joined with ``parts``: the default home of catalogs, plans, state and the devstack."""
    return airflow_home().joinpath("hybrid", *parts)
