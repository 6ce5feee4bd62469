"""The Spark SQL script of a query step: a temporary view per table over its location(s), then the query's
result written with ``INSERT OVERWRITE DIRECTORY '<output>' USING parquet|csv``.

Each :class:`~airflow_hybrid.mount.resolver.Location` of a table is one relation:

* a whole directory or file: ``parquet.`<uri>```;
* an exact file list (a member's directory that also holds files it must not read): ONE relation over a
  Hadoop glob with braces, ``parquet.`<common prefix>/{a.parquet,sub/b.parquet}``` (Spark expands globs,
  braces holding ``/`` too); when a name holds a glob metacharacter, one glob per directory instead, since
  Hadoop loses the escapes in braces holding ``/`` (:func:`file_list_globs`). When the files sit in Hive-style partition directories (``year=2001/``), the
  relation is a temporary view ``<table>__<n>`` ``USING parquet OPTIONS (path '<glob>', basePath '<dir>')``
  so Spark still discovers the partition columns below the table's directory.

Several locations are joined with ``UNION ALL`` of explicit column lists (``SELECT `a`, `b` FROM ...``): a
``SELECT *`` union is positional, and parts written with another column order would mix columns.

Nothing is interpolated unchecked: table names are plain identifiers, columns and locations are backtick
quoted (backticks doubled), glob metacharacters in paths are escaped with a backslash, string literals are
escaped for Spark's parser; a ``;`` (which ``spark-sql -e`` splits statements on outside quotes it knows),
``${`` (variable substitution) and control characters are refused in locations and column names.

The same statements run as an EMR step (``spark-sql -e`` or ``-f``, :mod:`airflow_hybrid.query.steps`) or
one by one with ``spark.sql`` (:func:`spark_sql_statements`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_hybrid.query.sql import check_identifier, strip_statement

if TYPE_CHECKING:
    from airflow_hybrid.mount.resolver import Location
    from airflow_hybrid.query.steps import EmrTable

#: Hadoop glob metacharacters, escaped with a backslash in every path of a script.
GLOB_METACHARACTERS = "{}[]*?\\,"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f;]|\$\{")
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/]*)(.*)$", re.DOTALL)
_PARTITION = re.compile(r"[^/=]+=[^/]*")


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} {value!r} is empty or not a text")
    bad = _UNSAFE.search(value)
    if bad:
        raise ValueError(
            f"{what} {value!r} contains {bad.group()!r}, which a spark-sql script cannot carry safely "
            "(';' splits statements, '${' is substituted, control characters break lines)"
        )
    return value


def escape_glob(path: str) -> str:
    """``path`` with every Hadoop glob metacharacter (``{}[]*?\\,``) escaped by a backslash."""
    return "".join("\\" + char if char in GLOB_METACHARACTERS else char for char in path)


def _escape_uri_path(uri: str) -> str:
    """The URI with its path glob-escaped; the scheme and authority (``[::1]:8020`` included) kept as they are."""
    match = _AUTHORITY.match(uri)
    if match is None:
        return escape_glob(uri)
    return match.group(1) + escape_glob(match.group(2))


def quote_column(name: str) -> str:
    """``name`` as a backtick-quoted Spark identifier (backticks doubled)."""
    return "`" + _check_text(name, "column").replace("`", "``") + "`"


def spark_string(value: str) -> str:
    """``value`` as a Spark SQL string literal (backslashes and quotes escaped with a backslash)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted_path(path: str) -> str:
    return "`" + path.replace("`", "``") + "`"


def _common_directory(uris: Sequence[str]) -> str:
    """The deepest directory (ending in ``/``) holding all of ``uris``, which share a scheme and authority."""
    prefix = uris[0].rpartition("/")[0] + "/"
    for uri in uris[1:]:
        while not uri.startswith(prefix):
            prefix = prefix[:-1].rpartition("/")[0] + "/"
            if prefix == "/":
                break
    match = _AUTHORITY.match(prefix)
    if match is None or not match.group(2):
        raise ValueError(f"files {uris[0]!r} and {uris[-1]!r} are in different file systems")
    return prefix


def _brace_glob(directory: str, names: Sequence[str]) -> str:
    if len(names) == 1:
        return _escape_uri_path(directory + names[0])
    return f"{_escape_uri_path(directory)}{{{','.join(escape_glob(name) for name in names)}}}"


def file_list_globs(file_uris: Sequence[str]) -> list[str]:
    """Hadoop globs matching exactly ``file_uris``, each file once: ONE ``<common directory>/{a.parquet,
    sub/b.parquet}`` (a single file is its own escaped path), or, when a path below the common directory holds a
    glob metacharacter, one ``<directory>/{a.parquet,b.parquet}`` per directory: Hadoop expands braces holding
    ``/`` before matching and loses the escapes in them, while escapes in a path or in a brace without ``/``
    hold."""
    uris = sorted(dict.fromkeys(_check_text(uri, "location") for uri in file_uris))
    if not uris:
        raise ValueError("a file list needs at least one file")
    prefix = _common_directory(uris)
    below = [uri[len(prefix) :] for uri in uris]
    if not any(char in GLOB_METACHARACTERS for rel in below for char in rel):
        return [_brace_glob(prefix, below)]
    directories: dict[str, list[str]] = {}
    for uri in uris:
        directory, _, name = uri.rpartition("/")
        directories.setdefault(directory + "/", []).append(name)
    return [_brace_glob(directory, names) for directory, names in directories.items()]


def _partitioned(location: Location) -> bool:
    """Whether a file list's files sit in ``key=value`` directories below the location's directory."""
    base = location.uri.rstrip("/") + "/"
    for uri in location.file_uris:
        rel = uri[len(base) :] if uri.startswith(base) else uri.rpartition("/")[2]
        if any(_PARTITION.fullmatch(part) for part in rel.split("/")[:-1]):
            return True
    return False


def _relations(name: str, locations: Sequence[Location]) -> tuple[list[str], list[str]]:
    """``(helper statements, relations)`` of table ``name``: one relation per location, or per glob of a file
    list (:func:`file_list_globs`)."""
    helpers, relations = [], []
    for index, location in enumerate(locations):
        _check_text(location.uri, "location")
        if not location.file_uris:
            relations.append(f"parquet.{_quoted_path(_escape_uri_path(location.uri))}")
            continue
        globs = file_list_globs(location.file_uris)
        if not _partitioned(location):
            relations.extend(f"parquet.{_quoted_path(glob)}" for glob in globs)
            continue
        for number, glob in enumerate(globs):
            part = check_identifier(f"{name}__{index}" + (f"_{number}" if len(globs) > 1 else ""), "table part")
            helpers.append(
                f"CREATE OR REPLACE TEMPORARY VIEW {part} USING parquet "
                f"OPTIONS (path {spark_string(glob)}, basePath {spark_string(location.uri)})"
            )
            relations.append(part)
    return helpers, relations


def table_statements(table: EmrTable) -> list[str]:
    """The statements defining ``table``'s temporary view (helper views first, when a part needs one)."""
    name = check_identifier(table.name, "table")
    if not table.locations:
        raise ValueError(f"table {name!r} has no location")
    if table.column_names:
        columns = ", ".join(quote_column(column) for column in table.column_names)
    elif len(table.locations) == 1:
        columns = "*"
    else:
        raise ValueError(
            f"table {name!r} has {len(table.locations)} locations but no column names: a SELECT * union is "
            "positional and would mix columns written in another order"
        )
    helpers, relations = _relations(name, table.locations)
    union = " UNION ALL ".join(f"SELECT {columns} FROM {relation}" for relation in relations)
    return [*helpers, f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {union}"]


def spark_sql_statements(
    sql: str, tables: Sequence[EmrTable], output_uri: str, output_format: str = "parquet"
) -> list[str]:
    """The script's statements, without their ``;``: each table's view(s), then the query written to
    ``output_uri`` (what a runner passes one by one to ``spark.sql``)."""
    if output_format not in ("parquet", "csv"):
        raise ValueError(f"output_format must be 'parquet' or 'csv', got {output_format!r}")
    statements = [statement for table in tables for statement in table_statements(table)]
    options = " OPTIONS ('header' 'true')" if output_format == "csv" else ""
    target = spark_string(_check_text(output_uri, "output location"))
    statements.append(f"INSERT OVERWRITE DIRECTORY {target} USING {output_format}{options}\n{strip_statement(sql)}")
    return statements


def spark_sql_script(
    sql: str, tables: Sequence[EmrTable], output_uri: str, output_format: str = "parquet"
) -> str:
    """The ``spark-sql -e``/``-f`` script: :func:`spark_sql_statements`, each ended by ``;`` on its own line."""
    return ";\n".join(spark_sql_statements(sql, tables, output_uri, output_format)) + ";"
