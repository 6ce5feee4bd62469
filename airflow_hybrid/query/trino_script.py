"""The Trino / Presto script of a query step: one external Hive table per location (columns typed from the
Parquet schema), a view per table unioning them, then ``CREATE TABLE ... (columns) WITH (external_location =
'<output>') AS <query>``.

The ``hive`` catalog the script runs in needs:

* ``hive.non-managed-table-writes-enabled=true`` (the result is an external table: a CTAS to a location);
* ``hive.recursive-directories=true`` when a location's files sit in subdirectories of its directory (a
  :class:`~airflow_hybrid.mount.resolver.Location` listing files at several depths, or a partitioned layout):
  Hive tables otherwise read only the files directly in ``external_location``.

**Locations.** An ``external_location`` must be a directory. A location reading a whole directory is that
directory. A location reading exactly some files (``Location.file_uris``, the directory also holding files that
must not be read; or a single ``.parquet`` file) is an external table over the files' common parent
directory, and the view keeps only their rows: ``WHERE "$path" IN (...)``, ``$path`` being the URI Trino
opened the file by, which is the table location joined with the file's relative path (the file URIs must
therefore be spelt as the location is: same scheme and authority).

**Result columns.** Trino's CTAS needs a name for every column, and the query may leave some unnamed
(``sum(x)`` with no alias). The script therefore names them in a column list: each output column keeps its
name when that is a plain identifier (an alias or a column reference), else it is ``_col<N>`` (``N`` its
0-based position, the name Trino gives unnamed columns in a result), as is a later duplicate of a name.
The names come from DuckDB binding the query over empty tables typed like the inputs (``DESCRIBE``); when
DuckDB cannot bind it (SQL only Trino understands), the CTAS goes without a list and Trino's own rule applies.

**Re-runs.** The CTAS fails with ``HIVE_PATH_ALREADY_EXISTS`` when the output directory exists with files:
the caller deletes the output prefix before submitting (the script's ``DROP TABLE`` of the previous result
table forgets the table, not its external files).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from airflow_hybrid.query.sql import check_identifier, sql_literal, strip_statement

if TYPE_CHECKING:
    from airflow_hybrid.query.steps import EmrTable

log = logging.getLogger(__name__)

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/]*)(/.*)?$")
_ARRAY = re.compile(r"\bARRAY\s*\(", re.IGNORECASE)


class _FileListLocation(Protocol):
    uri: str
    file_uris: tuple[str, ...]


def result_table_name(output_uri: str) -> str:
    """A stable table name for the result written to ``output_uri`` (Trino/Presto need a table for CTAS)."""
    return "hybrid_result_" + hashlib.sha1(output_uri.encode()).hexdigest()[:12]


# -- locations ------------------------------------------------------------------------------------------
def _files_of(location: str | _FileListLocation) -> tuple[str, tuple[str, ...]]:
    """``(uri, file URIs)`` of a location: a plain URI string or a resolver ``Location`` (``file_uris``);
    no files: the whole directory at ``uri``. A URI naming a ``.parquet`` file is that one file."""
    if isinstance(location, str):
        uri, files = location, ()
    else:
        uri, files = location.uri, tuple(location.file_uris)
    if not files and uri.rstrip("/").lower().endswith(".parquet"):
        files = (uri.rstrip("/"),)
    return uri, files


def common_directory(file_uris: Sequence[str]) -> str:
    """The deepest directory holding all of ``file_uris`` (all of one scheme and authority)."""
    roots, paths = set(), []
    for file_uri in file_uris:
        match = _URI.match(file_uri)
        if not match or not match.group(2) or match.group(2).endswith("/"):
            raise ValueError(f"{file_uri!r} is not the URI of a file")
        roots.add(match.group(1))
        paths.append(match.group(2))
    if len(roots) != 1:
        raise ValueError(f"the files of one location must share a scheme and authority, got {sorted(roots)}")
    directory = posixpath.commonpath([posixpath.dirname(path) for path in paths])
    return roots.pop() + directory


def _external_location(location: str | _FileListLocation) -> tuple[str, tuple[str, ...]]:
    """The directory an external table covers for ``location``, and the files to keep (empty: all)."""
    uri, files = _files_of(location)
    if not files:
        return uri, ()
    return common_directory(files), files


# -- result column names --------------------------------------------------------------------------------
def _split_definition(definition: str) -> tuple[str, str]:
    """``(name, type)`` of a column definition ``name TYPE`` or ``"quoted name" TYPE``."""
    text = definition.strip()
    if text.startswith('"'):
        end = 1
        while True:
            end = text.index('"', end)
            if text[end + 1 : end + 2] != '"':
                break
            end += 2
        return text[1:end].replace('""', '"'), text[end + 1 :].strip()
    name, _, sql_type = text.partition(" ")
    return name, sql_type.strip()


def _duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_type(trino_type: str) -> str:
    """A Trino type in DuckDB's spelling (``ARRAY(T)`` is ``T[]``, ``ROW`` is ``STRUCT``; others are alike)."""
    text = re.sub(r"\bROW\s*\(", "STRUCT(", trino_type, flags=re.IGNORECASE)
    while match := _ARRAY.search(text):
        depth, index = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            index += 1
        text = text[: match.start()] + text[match.end() : index - 1] + "[]" + text[index:]
    return text


def result_column_names(sql: str, tables: Sequence[EmrTable]) -> list[str] | None:
    """The output column names the CTAS declares (see the module's docstring), or ``None`` when DuckDB
    cannot bind ``sql`` over empty tables typed like ``tables``."""
    import duckdb

    con = duckdb.connect()
    try:
        for table in tables:
            definitions = [_split_definition(definition) for definition in table.columns or ()]
            names = getattr(table, "column_names", None)  # the plain names, when the table carries them
            if names and len(names) == len(definitions):
                definitions = [
                    (name, sql_type) for name, (_, sql_type) in zip(names, definitions, strict=True)
                ]
            columns = ", ".join(f"{_duckdb_identifier(name)} {_duckdb_type(t)}" for name, t in definitions)
            con.execute(f"CREATE TABLE {_duckdb_identifier(table.name)} ({columns})")
        described = con.execute(f"DESCRIBE {strip_statement(sql)}").fetchall()
    except duckdb.Error as error:
        log.warning(
            "Result column names not derived (DuckDB could not bind the query: %s); Trino names them", error
        )
        return None
    finally:
        con.close()
    names: list[str] = []
    seen: set[str] = set()
    for index, row in enumerate(described):
        name = row[0]
        if not _PLAIN_IDENTIFIER.fullmatch(name) or name.lower() in seen:
            name = f"_col{index}"
        seen.add(name.lower())
        names.append(name)
    return names


# -- the script -----------------------------------------------------------------------------------------
def trino_script(
    sql: str,
    tables: Sequence[EmrTable],
    output_uri: str,
    output_format: str = "parquet",
    catalog: str = "hive",
    schema: str = "hybrid",
) -> str:
    """The ``trino-cli``/``presto-cli --execute`` script: external tables + views, then a CTAS to ``output_uri``."""
    if output_format != "parquet":
        raise ValueError("Trino/Presto steps write Parquet only (output_format='parquet')")
    prefix = f"{check_identifier(catalog, 'catalog')}.{check_identifier(schema, 'schema')}"
    statements = [f"CREATE SCHEMA IF NOT EXISTS {prefix}"]
    for table in tables:
        name = check_identifier(table.name, "table")
        if not table.columns:
            raise ValueError(f"table {name!r}: Trino/Presto need its column definitions")
        columns = ",\n  ".join(table.columns)
        selects = []
        for index, location in enumerate(table.locations):
            part = f"{prefix}.{name}__{index}"
            directory, files = _external_location(location)
            statements.append(f"DROP TABLE IF EXISTS {part}")
            statements.append(
                f"CREATE TABLE {part} (\n  {columns}\n) "
                f"WITH (external_location = {sql_literal(directory)}, format = 'PARQUET')"
            )
            keep = f' WHERE "$path" IN ({", ".join(map(sql_literal, files))})' if files else ""
            selects.append(f"SELECT * FROM {part}{keep}")
        statements.append(f"CREATE OR REPLACE VIEW {prefix}.{name} AS {' UNION ALL '.join(selects)}")
    result = f"{prefix}.{result_table_name(output_uri)}"
    names = result_column_names(sql, tables)
    column_list = " (" + ", ".join(f'"{name}"' for name in names) + ")" if names else ""
    statements.append(f"DROP TABLE IF EXISTS {result}")
    statements.append(
        f"CREATE TABLE {result}{column_list} WITH (external_location = {sql_literal(output_uri)}, "
        f"format = 'PARQUET') AS\n{strip_statement(sql)}"
    )
    return ";\n".join(statements) + ";"
