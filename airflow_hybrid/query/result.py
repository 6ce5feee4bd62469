"""What a query run returns: a small, JSON-serialisable summary (fit for XCom), never the data."""

from __future__ import annotations

import datetime
import decimal
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class QueryResult:
    """Summary of one query: where the result went, how many rows, and its first rows."""

    engine: str
    output_path: str
    output_format: str
    rows: int | None = None
    columns: list[str] = field(default_factory=list)
    preview: list[list[Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def json_value(value: Any) -> Any:
    """``value`` as something JSON (and XCom) can carry: decimals and dates become strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)
