"""Small helpers for building SQL text."""

from __future__ import annotations


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
