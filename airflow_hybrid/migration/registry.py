"""The policies file: which migration policy applies to which path of which mount, and how often.

A YAML file (by default ``hybrid_policies.yaml`` in the DAGs folder, or the path in the Airflow Variable
``hybrid_policies_file``) lists entries, at the top level or under ``policies:``::

    policies:
      - name: sales_cold_to_s3            # optional; default: the policy's name, else <mount>_<path>
        mount: onprem_union                # hybrid_mount connection id
        path: /tpcds/store_sales
        policy: "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
        schedule: "@daily"                 # cron, preset, or null for manual runs
        min_files: 1                       # the sensor waits for at least this many selected files
        min_bytes: 1GiB                    # ... and this many bytes (a number or a size)
        engine: local                      # or emr (with an `emr:` section: job_flow_id, aws_conn_id, ...),
                                           # or distcp (optional `distcp:` section: command, args, env, ...)

Loading never stops at the first bad entry: :func:`load_policies_file` returns the valid entries and one
error string per invalid one, naming the entry and the field. It reads no connection, so it is cheap
enough for DAG parsing; members are checked against the mount when the migration runs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_hybrid.paths import hybrid_url
from airflow_hybrid.policy.model import Policy, PolicyError
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.settings import airflow_home
from airflow_hybrid.stores.base import normalize_path
from airflow_hybrid.values import parse_bool, parse_duration, parse_size, shown

log = logging.getLogger(__name__)

POLICIES_VARIABLE = "hybrid_policies_file"
DEFAULT_FILE_NAME = "hybrid_policies.yaml"
DAG_ID_PREFIX = "hybrid_migrate_"
#: How copies are made: by the migrate task (``local``), by an S3DistCp step on EMR (``emr``) or by Apache
#: Hadoop DistCp run by a Hadoop client (``distcp``).
MIGRATION_ENGINES = ("local", "emr", "distcp")
EMR_KEYS = (
    "job_flow_id",
    "aws_conn_id",
    "manifest_prefix",
    "s3distcp_args",
    "waiter_delay",
    "waiter_max_attempts",
)
#: The ``distcp:`` section: UfsMigrateOperator's ``distcp_<key>`` arguments.
DISTCP_KEYS = ("command", "args", "env", "properties", "s3_scheme", "s3a_from_connection", "list_prefix",
               "list_conn_id")

_REQUIRED = ("mount", "path", "policy", "schedule")
_OPTIONAL = (
    "name",
    "min_files",
    "min_bytes",
    "engine",
    "executor",
    "emr",
    "distcp",
    "concurrency",
    "deferrable",
    "poke_interval",
    "timeout",
    "batch_max_files",
    "batch_max_bytes",
    "plan_store",
    "plan_store_conn_id",
    "tags",
    "description",
)


class PolicyEntryError(PolicyError):
    """One field of a policies-file entry is invalid."""


@dataclass(frozen=True)
class PolicyEntry:
    """One valid entry of the policies file."""

    name: str
    mount: str
    path: str
    policy: Policy
    schedule: str | None
    min_files: int = 1
    min_bytes: int = 0
    engine: str = "local"
    emr: dict[str, Any] = field(default_factory=dict)
    distcp: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 8
    deferrable: bool = True
    poke_interval: float = 300.0
    timeout: float | None = None
    batch_max_files: int | None = None
    batch_max_bytes: int | None = None
    plan_store: str | None = None
    plan_store_conn_id: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None

    @property
    def dag_id(self) -> str:
        return f"{DAG_ID_PREFIX}{self.name}"

    @property
    def asset_uri(self) -> str:
        """The ``hybrid://`` URI of the migrated path (the migration tasks' outlet)."""
        return hybrid_url(self.mount, self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dag_id": self.dag_id,
            "mount": self.mount,
            "path": self.path,
            "policy": self.policy.to_text(),
            "schedule": self.schedule,
            "min_files": self.min_files,
            "min_bytes": self.min_bytes,
            "engine": self.engine,
            "emr": dict(self.emr),
            "distcp": dict(self.distcp),
            "concurrency": self.concurrency,
            "deferrable": self.deferrable,
            "poke_interval": self.poke_interval,
            "timeout": self.timeout,
            "batch_max_files": self.batch_max_files,
            "batch_max_bytes": self.batch_max_bytes,
            "plan_store": self.plan_store,
            "plan_store_conn_id": self.plan_store_conn_id,
            "tags": list(self.tags),
            "description": self.description,
        }


def default_policies_path() -> Path:
    """The Variable ``hybrid_policies_file`` when set, else ``hybrid_policies.yaml`` in the DAGs folder."""
    configured = _variable(POLICIES_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    try:
        from airflow.sdk import conf

        dags_folder = conf.get("core", "dags_folder")
    except Exception:  # pragma: no cover - outside Airflow
        dags_folder = str(airflow_home() / "dags")
    return Path(dags_folder).expanduser() / DEFAULT_FILE_NAME


def _supervised() -> bool:
    """Whether this process talks to a supervisor (a task, DAG parsing, a trigger), as Airflow checks it."""
    return getattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS", None) is not None


def _variable(key: str) -> str | None:
    """An Airflow Variable, ``None`` when unset or unreachable.

    ``AIRFLOW_VAR_<KEY>`` first, then the Task SDK's ``Variable.get``: through the API server in a task or
    DAG-parsing process, from the metadata database in a server process (``_AIRFLOW_PROCESS_CONTEXT=server``:
    ``airflow hybrid`` commands, the scheduler), from the secrets backends only in any other process. There
    (a script, a test) the metadata database is read directly with Airflow's ``MetastoreBackend``, as
    ``airflow.models.Variable`` did, without its deprecated ``get``.
    """
    value = os.environ.get(f"AIRFLOW_VAR_{key.upper()}")
    if value:
        return value
    try:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None)
    except Exception as err:  # noqa: BLE001 - an unreachable API server or backend means "not configured"
        log.debug("Variable %s could not be read through the Task SDK: %s", key, err)
        value = None
    if value is None and not _supervised() and os.environ.get("_AIRFLOW_PROCESS_CONTEXT") != "server":
        try:
            from airflow.secrets.metastore import MetastoreBackend

            value = MetastoreBackend().get_variable(key)
        except Exception as err:  # noqa: BLE001 - no metadata database here
            log.debug("Variable %s could not be read from the metadata database: %s", key, err)
            value = None
    return value


def load_policies_file(path: str | os.PathLike | None = None) -> tuple[list[PolicyEntry], list[str]]:
    """Read the policies file; return ``(valid entries, errors)``, an error per invalid entry.

    :param path: the YAML file; ``None`` for :func:`default_policies_path`.
    """
    file = Path(path).expanduser() if path is not None else default_policies_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [f"policies file {file} does not exist"]
    except OSError as err:
        return [], [f"policies file {file} cannot be read: {err}"]
    return parse_policies(text, source=str(file))


def parse_policies(text: str, source: str = "<policies>") -> tuple[list[PolicyEntry], list[str]]:
    """Parse the YAML text of a policies file (see :func:`load_policies_file`)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return [], [f"{source}: not valid YAML{where}: {getattr(err, 'problem', None) or err}"]
    except (ValueError, RecursionError) as err:  # e.g. a date such as 2024-13-01, or nesting too deep
        return [], [f"{source}: not valid YAML: {type(err).__name__}: {err}"]
    if document is None:
        return [], []
    if isinstance(document, dict):
        unknown = set(document) - {"policies"}
        if unknown:
            return [], [f"{source}: unknown top-level keys {sorted(map(str, unknown))}; expected a list or 'policies:'"]
        document = document.get("policies") or []
    if not isinstance(document, list):
        return [], [f"{source}: expected a list of policies, got {type(document).__name__}"]

    entries: list[PolicyEntry] = []
    errors: list[str] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(document):
        label = f"entry {index}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']!r})"
        try:
            entry = _entry(raw)
        except PolicyEntryError as err:
            errors.append(f"{source}: {label}: {err}")
            continue
        if entry.name in names:
            errors.append(
                f"{source}: {label}: name {entry.name!r} is already used by entry {names[entry.name]}; "
                "give each entry a distinct 'name'"
            )
            continue
        names[entry.name] = index
        entries.append(entry)
    return entries, errors


def _entry(raw: Any) -> PolicyEntry:
    if not isinstance(raw, dict):
        raise PolicyEntryError(f"expected a mapping with {', '.join(_REQUIRED)}, got {type(raw).__name__}")
    unknown = sorted(map(str, set(raw) - set(_REQUIRED) - set(_OPTIONAL)))
    if unknown:
        raise PolicyEntryError(f"unknown keys {unknown}; known keys: {', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise PolicyEntryError(f"missing {', '.join(missing)}")

    mount = _text(raw, "mount")
    try:
        path = normalize_path(_text(raw, "path", allow_empty=True))
    except ValueError as err:
        raise PolicyEntryError(f"path: {err}") from None
    try:
        policy = parse_policy(_text(raw, "policy"))
    except PolicyError as err:
        message = str(err).replace("\n", "\n    ")
        raise PolicyEntryError(f"policy: {message}") from None
    schedule = raw["schedule"]
    if schedule is not None and not isinstance(schedule, str):
        raise PolicyEntryError(
            f"schedule: expected a cron expression, a preset such as '@daily', or null; got {shown(schedule)}"
        )
    if raw.get("name") is not None and not isinstance(raw["name"], str):
        raise PolicyEntryError(f"name: expected a text, got {shown(raw['name'])}")
    name = raw.get("name") or policy.name or f"{mount}_{path or 'root'}"
    name = _name(str(name), explicit="name" in raw)

    if "engine" in raw and "executor" in raw:
        raise PolicyEntryError("engine and executor: give one of them (executor is another name for engine)")
    key = "executor" if "executor" in raw else "engine"
    engine = raw.get(key, "local")
    if not isinstance(engine, str) or engine not in MIGRATION_ENGINES:
        raise PolicyEntryError(f"{key}: expected one of {', '.join(MIGRATION_ENGINES)}, got {shown(engine)}")
    emr = _section(raw, "emr", EMR_KEYS)
    distcp = _section(raw, "distcp", DISTCP_KEYS)
    if engine == "emr" and not emr.get("job_flow_id"):
        raise PolicyEntryError(f"emr.job_flow_id: required with {key}: emr (the EMR cluster to run S3DistCp on)")

    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PolicyEntryError(f"tags: expected a list of strings, got {shown(tags)}")
    return PolicyEntry(
        name=name,
        mount=mount,
        path=path,
        policy=policy,
        schedule=schedule,
        min_files=_integer(raw, "min_files", 1, minimum=0),
        min_bytes=_size(raw, "min_bytes", 0),
        engine=engine,
        emr=emr,
        distcp=distcp,
        concurrency=_integer(raw, "concurrency", 8, minimum=1),
        deferrable=_boolean(raw, "deferrable", True),
        poke_interval=_seconds(raw, "poke_interval", 300.0),
        timeout=_seconds(raw, "timeout", None),
        batch_max_files=_integer(raw, "batch_max_files", None, minimum=1),
        batch_max_bytes=_size(raw, "batch_max_bytes", None, minimum=1),
        plan_store=_optional_text(raw, "plan_store"),
        plan_store_conn_id=_optional_text(raw, "plan_store_conn_id"),
        tags=tuple(tags),
        description=_optional_text(raw, "description"),
    )


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def _name(value: str, *, explicit: bool) -> str:
    cleaned = _NAME_CHARS.sub("_", value).strip("_") or "root"
    if explicit and cleaned != value:
        raise PolicyEntryError(
            f"name: {value!r} may only contain letters, digits, '_', '.' and '-' "
            "(it becomes part of the DAG id)"
        )
    if len(DAG_ID_PREFIX) + len(cleaned) > 250:
        raise PolicyEntryError(
            f"name: {value!r} is too long for a DAG id (at most {250 - len(DAG_ID_PREFIX)})"
        )
    return cleaned


def _text(raw: dict, key: str, *, allow_empty: bool = False) -> str:
    value = raw[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise PolicyEntryError(f"{key}: expected a non-empty string, got {shown(value)}")
    return value.strip()


def _optional_text(raw: dict, key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyEntryError(f"{key}: expected a string, got {shown(value)}")
    return value


def _section(raw: dict, key: str, known: tuple[str, ...]) -> dict[str, Any]:
    """An engine's settings mapping (``emr:``, ``distcp:``), its keys checked."""
    section = raw.get(key) or {}
    if not isinstance(section, dict):
        raise PolicyEntryError(f"{key}: expected a mapping with {', '.join(known)}, got {shown(section)}")
    unknown = sorted(map(str, set(section) - set(known)))
    if unknown:
        raise PolicyEntryError(f"{key}: unknown keys {unknown}; known keys: {', '.join(known)}")
    return dict(section)


def _integer(raw: dict, key: str, default: int | None, *, minimum: int) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyEntryError(f"{key}: expected an integer >= {minimum}, got {shown(value)}")
    return value


def _size(raw: dict, key: str, default: int | None, *, minimum: int = 0) -> int | None:
    """A size: bytes or a text such as ``512MiB`` or ``1GB`` (:func:`airflow_hybrid.values.parse_size`)."""
    value = raw.get(key, default)
    if value is None:
        return None
    try:
        size = parse_size(value, key, error=PolicyEntryError)
    except PolicyEntryError as err:
        reason = str(err).removeprefix(f"{key}: ")
        raise PolicyEntryError(
            f"{key}: {shown(value)} is not a size such as 1048576, '512MiB' or '1GB' ({reason})"
        ) from None
    if size < minimum:
        raise PolicyEntryError(f"{key}: expected a size >= {minimum} bytes, got {shown(value)}")
    return size


def _seconds(raw: dict, key: str, default: float | None) -> float | None:
    """A positive duration: seconds or a text such as ``5m`` (:func:`airflow_hybrid.values.parse_duration`)."""
    value = raw.get(key, default)
    if value is None:
        return None
    seconds = parse_duration(value, key, error=PolicyEntryError)
    if seconds <= 0:
        raise PolicyEntryError(f"{key}: expected a positive number of seconds, got {shown(value)}")
    return seconds


def _boolean(raw: dict, key: str, default: bool) -> bool:
    return parse_bool(raw.get(key, default), key, error=PolicyEntryError)
