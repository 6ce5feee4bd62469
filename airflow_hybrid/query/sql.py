"""Small helpers for building SQL text."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip_statement(sql: str) -> str:
    """``sql`` without surrounding blanks and trailing semicolons (one statement, embeddable in others)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("the SQL statement is empty")
    return text


def sql_string(value: str) -> str:
    """``value`` escaped for use inside a single-quoted SQL string."""
    return value.replace("'", "''")


def sql_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string literal."""
    return "'" + sql_string(value) + "'"


def check_identifier(value: str, what: str) -> str:
    """``value`` when it is a plain SQL identifier (letters, digits, ``_``), else :class:`ValueError` naming ``what``."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier")
    return value
