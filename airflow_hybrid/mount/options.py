"""Parse a ``hybrid_mount`` connection's options, ours or Alluxio's union-UFS mount options.

Two spellings are accepted and may be mixed:

* ours (JSON in the connection extras)::

    {"members": {"hdfs": {"uri": "hdfs:///tmp/tpcds", "conn_id": "webhdfs_default"},
                 "s3": {"uri": "s3://bucket/tpcds", "conn_id": "aws_default"}},
     "priority.read": "s3,hdfs", "collection.create": "s3"}

* Alluxio's, as flat keys in the extras or as ``key=value`` lines (``--option`` prefixes allowed) in the
  ``mount_options`` text field::

    alluxio-union.hdfs.uri=hdfs://namenode:8020/tmp/tpcds
    alluxio-union.s3.uri=s3://bucket/tpcds
    alluxio-union.priority.read=s3,hdfs
    alluxio-union.collection.create=s3
    alluxio-union.hdfs.option.conn_id=webhdfs_default
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.factory import SUPPORTED_SCHEMES, TRANSPORTS
from airflow_hybrid.values import shown

ALLUXIO_PREFIX = "alluxio-union."
DEFAULT_CONN_IDS = {"hdfs": "webhdfs_default", "webhdfs": "webhdfs_default", "s3": "aws_default", "s3a": "aws_default"}
#: Extras keys that belong to other parts of the mount (cache, catalog) and are passed through untouched.
PASSTHROUGH_KEYS = ("cache", "catalog_url", "mount_options")


class MountConfigError(HybridConfigError):
    """An invalid mount option; the message names the option."""


@dataclass(frozen=True)
class MemberSpec:
    """One member (under-store) of a union mount."""

    name: str
    uri: str
    conn_id: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return urlparse(self.uri).scheme.lower()


@dataclass(frozen=True)
class MountSpec:
    """A validated union mount: members, read priority and create targets, plus passthrough settings."""

    name: str
    members: dict[str, MemberSpec]
    read_order: list[str]
    create_members: list[str]
    settings: dict[str, Any] = field(default_factory=dict)


def _split_list(value: Any, option: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise MountConfigError(f"{option}: expected a comma-separated list of member names, got {shown(value)}")
    if not items or any(not item for item in items):
        raise MountConfigError(f"{option}: empty member name in {shown(value)}")
    return items


def parse_option_lines(text: str) -> dict[str, str]:
    """Parse ``key=value`` pairs from text, one per line or as ``--option key=value`` words.

    Lines are split like a shell would (quotes, ``#`` comments); an error names the line.
    """
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as err:  # an unclosed quote, a trailing backslash
            raise MountConfigError(f"mount_options: {str(err).lower()} (line {number}: {shown(line)})") from None
        for word in words:
            if word in ("--option", "-o"):
                continue
            key, sep, value = word.partition("=")
            if not sep or not key.strip():
                raise MountConfigError(f"mount_options: expected key=value, got {shown(word)} (line {number})")
            result[key.strip()] = value.strip()
    return result


def _option_text(value: Any) -> str:
    """The ``mount_options`` field: a text, or a list of ``key=value`` lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    raise MountConfigError(f"mount_options: expected key=value lines (a text), got {shown(value)}")


def check_uri(uri: Any, option: str, *, what: str = "member", error: type[HybridConfigError] = MountConfigError) -> str:
    """A store URI, checked: a text with a supported scheme, a bucket for S3, a path for a local directory."""
    if not isinstance(uri, str):
        raise error(f"{option}: expected a URI such as s3://bucket/prefix, got {shown(uri)}")
    if not uri.strip():
        raise error(f"{option}: missing (every {what} needs a uri)")
    if "\x00" in uri or len(uri) > 4096:
        raise error(f"{option}: not a valid URI: {shown(uri)}")
    try:
        parsed = urlparse(uri)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as err:  # e.g. "Invalid IPv6 URL" for s3://[x/p
        raise error(f"{option}: not a valid URI ({err}): {shown(uri)}") from None
    scheme = parsed.scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise error(f"{option}: unsupported scheme {scheme!r} in {shown(uri)} (supported: hdfs, s3, file)")
    if scheme in ("s3", "s3a") and not parsed.netloc:
        raise error(f"{option}: {shown(uri)} names no bucket (expected s3://bucket/prefix)")
    if scheme in ("file", "") and not parsed.path:
        raise error(f"{option}: {shown(uri)} names no directory")
    return uri


def _collect(extras: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Fold both spellings into ``(members, union_options)``."""
    flat: dict[str, Any] = {}
    if extras.get("mount_options"):
        flat.update(parse_option_lines(_option_text(extras["mount_options"])))
    flat.update({k: v for k, v in extras.items() if k.startswith(ALLUXIO_PREFIX)})

    members: dict[str, dict[str, Any]] = {}
    raw_members = extras.get("members") or {}
    if not isinstance(raw_members, Mapping):
        raise MountConfigError(
            f"members: expected an object of member name -> {{uri, conn_id}}, got {shown(raw_members)}"
        )
    for name, spec in raw_members.items():
        _check_member_name(name, "members")
        if not isinstance(spec, Mapping):
            raise MountConfigError(f"members.{name}: expected an object with 'uri', got {shown(spec)}")
        members[name] = {"options": {}, **spec}

    union: dict[str, Any] = {}
    for key in ("priority.read", "collection.create"):
        if key in extras:
            union[key] = extras[key]
    for key, value in flat.items():
        rest = key[len(ALLUXIO_PREFIX) :]
        if rest in ("priority.read", "collection.create"):
            union.setdefault(rest, value)
            continue
        member, _, attr = rest.partition(".")
        if not member or not attr:
            raise MountConfigError(f"{key}: expected {ALLUXIO_PREFIX}<member>.uri or .option.<name>")
        _check_member_name(member, key)
        entry = members.setdefault(member, {"options": {}})
        if not isinstance(entry.get("options"), dict):
            raise MountConfigError(f"members.{member}.options: expected an object, got {shown(entry['options'])}")
        if attr == "uri":
            entry.setdefault("uri", value)
        elif attr == "conn_id" or attr == "option.conn_id":
            entry.setdefault("conn_id", value)
        elif attr.startswith("option.") and attr != "option.":
            entry["options"] = {**entry["options"], attr[len("option.") :]: value}
        else:
            raise MountConfigError(f"{key}: unknown member attribute {attr!r} (expected uri or option.<name>)")
    return members, union


def _check_member_name(name: Any, option: str) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip() or "," in name:
        raise MountConfigError(f"{option}: {shown(name)} is not a member name (a word without commas or spaces)")


def parse_mount_options(name: str, extras: dict[str, Any]) -> MountSpec:
    """Validate a mount's options and return its :class:`MountSpec`.

    :raises MountConfigError: naming the offending option.
    """
    if not isinstance(extras, Mapping):
        raise MountConfigError(f"mount {name!r}: expected an object of options, got {shown(extras)}")
    unknown = [
        k for k in extras
        if k not in ("members", "priority.read", "collection.create", *PASSTHROUGH_KEYS)
        and not (isinstance(k, str) and k.startswith(ALLUXIO_PREFIX))
    ]
    if unknown:
        raise MountConfigError(
            f"mount {name!r}: unknown options {sorted(map(str, unknown))} (expected members, priority.read, "
            f"collection.create, cache, catalog_url, mount_options or {ALLUXIO_PREFIX}*)"
        )
    members_raw, union = _collect(extras)
    if not members_raw:
        raise MountConfigError(
            f"mount {name!r}: no members; set 'members' or {ALLUXIO_PREFIX}<member>.uri options"
        )
    members: dict[str, MemberSpec] = {}
    for member, spec in members_raw.items():
        unknown = set(spec) - {"uri", "conn_id", "options"}
        if unknown:
            raise MountConfigError(
                f"members.{member}: unknown keys {sorted(map(str, unknown))} (expected uri, conn_id, options)"
            )
        if spec.get("uri") is None:
            raise MountConfigError(f"members.{member}.uri: missing (every member needs a uri)")
        uri = check_uri(spec["uri"], f"members.{member}.uri")
        scheme = urlparse(uri).scheme.lower()
        conn_id = spec.get("conn_id")
        if conn_id is not None and (not isinstance(conn_id, str) or len(conn_id) > 250):
            raise MountConfigError(f"members.{member}.conn_id: expected a connection id, got {shown(conn_id)}")
        options = spec.get("options")
        if options is None:
            options = {}
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise MountConfigError(
                f"members.{member}.options: expected an object of store options, got {shown(options)}"
            )
        transport = options.get("transport")
        if transport is not None and (scheme not in ("hdfs", "webhdfs") or not isinstance(transport, str)
                                      or transport.strip().lower() not in TRANSPORTS):
            expected = "webhdfs or rpc" if scheme in ("hdfs", "webhdfs") else "no transport (HDFS members only)"
            raise MountConfigError(f"members.{member}.options.transport: expected {expected}, got {shown(transport)}")
        if transport is not None and transport.strip().lower() == "rpc":
            default_conn_id = None  # HDFS's RPC protocol needs no Airflow connection (stores/hdfs/rpc.py)
        else:
            default_conn_id = DEFAULT_CONN_IDS.get(scheme)
        members[member] = MemberSpec(member, uri, conn_id or default_conn_id, dict(options))

    read_order = _split_list(union.get("priority.read", ",".join(members)), "priority.read")
    for member in read_order:
        if member not in members:
            raise MountConfigError(f"priority.read: unknown member {member!r} (members: {', '.join(members)})")
    if len(set(read_order)) != len(read_order):
        raise MountConfigError(f"priority.read: a member is listed twice in {read_order}")
    missing = [m for m in members if m not in read_order]
    if missing:
        raise MountConfigError(f"priority.read: must list every member once; missing {missing}")

    create = _split_list(union.get("collection.create", read_order[0]), "collection.create")
    for member in create:
        if member not in members:
            raise MountConfigError(f"collection.create: unknown member {member!r} (members: {', '.join(members)})")

    settings = {k: extras[k] for k in PASSTHROUGH_KEYS if k in extras}
    return MountSpec(name=name, members=members, read_order=read_order, create_members=create, settings=settings)
