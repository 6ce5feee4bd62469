"""The gateway's settings: which mounts it serves, who may call it, where it listens.

Access keys come from an Airflow connection (``--auth-conn``, any type, e.g. ``aws`` or ``generic``):
``login`` is an access key id and ``password`` its secret; extras::

    {"read_only": false,                      # the login key's permission (default true: read only)
     "keys": {"AKIDREADER": {"secret": "...", "read_only": true},
              "AKIDWRITER": {"secret": "...", "read_only": false, "buckets": ["lake"]}},
     "anonymous": "off",                      # or "read": unsigned GET/HEAD/LIST are allowed
     "region": "us-east-1"}

Without an auth connection every request is refused (anonymous access is off) unless anonymous is configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.values import parse_bool

#: S3's limit on a key's length (UTF-8 bytes).
MAX_KEY_BYTES = 1024
ANONYMOUS_MODES = ("off", "read", "write")


class GatewayConfigError(HybridConfigError):
    """An invalid gateway option; the message names it."""


@dataclass(frozen=True)
class AccessKey:
    """One access key: its secret, whether it may write, and the buckets it may use (``None``: all)."""

    access_key: str
    secret: str
    read_only: bool = True
    buckets: frozenset[str] | None = None

    def allows(self, bucket: str | None, write: bool) -> bool:
        if write and self.read_only:
            return False
        return bucket is None or self.buckets is None or bucket in self.buckets

    def __repr__(self) -> str:  # never the secret
        return f"AccessKey({self.access_key!r}, read_only={self.read_only})"


@dataclass
class GatewayConfig:
    """What ``create_app`` serves: ``mounts`` (bucket name = mount connection id), keys, anonymous access."""

    mounts: list[str]
    keys: dict[str, AccessKey] = field(default_factory=dict)
    anonymous: str = "off"
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 9000
    #: Where uploads are spooled (PutObject bodies, multipart parts) before they reach a mount.
    spool_dir: Path | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: Largest skew between a signed request's date and the gateway's clock (S3: 15 minutes).
    max_clock_skew: float = 900.0

    def __post_init__(self) -> None:
        if not self.mounts:
            raise GatewayConfigError("gateway: at least one --mount is needed")
        if len(set(self.mounts)) != len(self.mounts):
            raise GatewayConfigError(f"gateway: a mount is named twice in {self.mounts}")
        if self.anonymous not in ANONYMOUS_MODES:
            raise GatewayConfigError(f"gateway: anonymous {self.anonymous!r} is not one of {', '.join(ANONYMOUS_MODES)}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise GatewayConfigError("gateway: TLS needs both a certificate file and a key file")

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile)

    @staticmethod
    def keys_from_connection(conn_id: str) -> tuple[dict[str, AccessKey], dict[str, Any]]:
        """The access keys of Airflow connection ``conn_id`` and its extras (module doc)."""
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson if isinstance(conn.extra_dejson, dict) else {}
        return parse_keys(conn.login, conn.password, extra, f"connection {conn_id!r}"), extra

    @classmethod
    def from_connection(cls, mounts: list[str], auth_conn_id: str | None, **kwargs: Any) -> GatewayConfig:
        keys: dict[str, AccessKey] = {}
        if auth_conn_id:
            keys, extra = cls.keys_from_connection(auth_conn_id)
            kwargs.setdefault("anonymous", str(extra.get("anonymous", "off")).lower())
            if extra.get("region"):
                kwargs.setdefault("region", str(extra["region"]))
        return cls(mounts=mounts, keys=keys, **kwargs)


def parse_keys(login: str | None, password: str | None, extra: dict[str, Any], where: str) -> dict[str, AccessKey]:
    """Access keys from a connection's login/password and its ``keys`` extra."""
    keys: dict[str, AccessKey] = {}
    if login:
        if not password:
            raise GatewayConfigError(f"{where}: access key {login!r} has no secret (the connection's password)")
        keys[login] = AccessKey(login, password, parse_bool(extra.get("read_only", True), f"{where} read_only"),
                                _buckets(extra.get("buckets"), where))
    more = extra.get("keys") or {}
    if isinstance(more, str):
        try:
            more = json.loads(more)
        except ValueError as err:
            raise GatewayConfigError(f"{where}: extra 'keys' is not JSON: {err}") from None
    if not isinstance(more, dict):
        raise GatewayConfigError(f"{where}: extra 'keys' must map access key ids to {{'secret': ...}}")
    for access_key, spec in more.items():
        if not isinstance(spec, dict) or not spec.get("secret"):
            raise GatewayConfigError(f"{where}: keys.{access_key} needs a 'secret'")
        keys[access_key] = AccessKey(
            access_key, str(spec["secret"]),
            parse_bool(spec.get("read_only", True), f"{where} keys.{access_key}.read_only"),
            _buckets(spec.get("buckets"), f"{where} keys.{access_key}"),
        )
    return keys


def _buckets(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise GatewayConfigError(f"{where}: 'buckets' must be a list of mount ids")
    return frozenset(str(v) for v in value)
