"""Table schemas for SQL engines: read a Parquet schema from any store, type it for Hive, Trino or Presto.

Only the Parquet footer is fetched (two ranged reads), so a schema costs the same for a 1 KB file on local
disk and a 1 GB file on HDFS or S3.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_hybrid.exceptions import HybridConfigError

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.stores.base import Store

_MAGIC = b"PAR1"
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SchemaError(HybridConfigError):
    """A schema could not be read or has a type the target dialect cannot express."""


def read_parquet_schema(store: Store | HybridMount, path: str) -> pa.Schema:
    """Schema of the Parquet file ``path`` in ``store`` (a store or a mount), read from its footer only."""
    info = store.info(path)
    if info.size < 12:
        raise SchemaError(f"{path!r} ({info.size} bytes) is too small to be a Parquet file")
    with store.open_read(path, offset=info.size - 8, length=8) as stream:
        trailer = stream.read()
    if len(trailer) != 8 or trailer[4:] != _MAGIC:
        raise SchemaError(f"{path!r} is not a Parquet file (no PAR1 footer)")
    footer_length = struct.unpack("<I", trailer[:4])[0]
    if footer_length + 12 > info.size:
        raise SchemaError(f"{path!r}: corrupt Parquet footer length {footer_length}")
    with store.open_read(path, offset=info.size - 8 - footer_length, length=footer_length) as stream:
        footer = stream.read()
    # A buffer holding just the magic, the footer and the trailer is enough to decode the schema.
    return pq.read_schema(pa.BufferReader(_MAGIC + footer + trailer))


def _sql_type(t: pa.DataType, dialect: str) -> str:
    hive = dialect == "hive"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t) or pa.types.is_uint8(t):
        return "TINYINT"
    if pa.types.is_int16(t) or pa.types.is_uint16(t):
        return "SMALLINT"
    if pa.types.is_int32(t):
        return "INT" if hive else "INTEGER"
    if pa.types.is_uint32(t) or pa.types.is_int64(t) or pa.types.is_uint64(t):
        return "BIGINT"
    if pa.types.is_float32(t):
        return "FLOAT" if hive else "REAL"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING" if hive else "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BINARY" if hive else "VARBINARY"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if hive else "TIMESTAMP(3)"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _sql_type(t.value_type, dialect)
        return f"ARRAY<{inner}>" if hive else f"ARRAY({inner})"
    if pa.types.is_map(t):
        key, item = _sql_type(t.key_type, dialect), _sql_type(t.item_type, dialect)
        return f"MAP<{key},{item}>" if hive else f"MAP({key}, {item})"
    if pa.types.is_struct(t):
        fields = [(f.name, _sql_type(f.type, dialect)) for f in t]
        if hive:
            return "STRUCT<" + ",".join(f"{name}:{ftype}" for name, ftype in fields) + ">"
        return "ROW(" + ", ".join(f"{name} {ftype}" for name, ftype in fields) + ")"
    raise SchemaError(f"no {dialect} type for Arrow type {t}")


def quote_identifier(name: str, dialect: str = "hive") -> str:
    """``name`` as is when it is a plain identifier, else quoted for ``dialect``."""
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    if dialect == "hive":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def column_definitions(schema: pa.Schema, dialect: str = "hive") -> list[str]:
    """``name TYPE`` for every column of ``schema`` in ``dialect`` (``hive`` or ``trino``)."""
    definitions = []
    for field in schema:
        try:
            definitions.append(f"{quote_identifier(field.name, dialect)} {_sql_type(field.type, dialect)}")
        except SchemaError as err:
            raise SchemaError(f"column {field.name!r}: {err}") from None
    return definitions


def table_schema(store: Store | HybridMount, path: str) -> pa.Schema:
    """Schema of the table at ``path``: the file itself, or the first ``*.parquet`` file (by name) below it."""
    info = store.info(path)
    if not info.is_dir:
        return read_parquet_schema(store, path)
    first = min((f.path for f in store.walk_files(path) if f.path.endswith(".parquet")), default=None)
    if first is None:
        raise FileNotFoundError(f"no Parquet files under {path!r} in {store!r}")
    return read_parquet_schema(store, first)
