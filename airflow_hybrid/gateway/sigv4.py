"""AWS Signature Version 4, verified as S3 does: the ``Authorization`` header, presigned query URLs, and the
``aws-chunked`` bodies SDKs stream (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, each chunk signed after the
previous one, and ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, a trailing checksum).

Only ``AWS4-HMAC-SHA256`` is accepted (no SigV2, no SigV4a). Any region in the credential scope is accepted
(clients such as DuckDB default to ``us-east-1``); the service must be ``s3``.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from airflow_hybrid.gateway.config import AccessKey
from airflow_hybrid.gateway.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: A presigned URL lives at most seven days (S3's limit).
MAX_EXPIRES = 7 * 24 * 3600
_CREDENTIAL = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Identity:
    """Who signed a request (``None`` key: anonymous), and what a streamed body must be checked against."""

    key: AccessKey | None
    #: ``x-amz-content-sha256`` as signed: a hex digest, ``UNSIGNED-PAYLOAD`` or a ``STREAMING-...`` mode.
    payload: str = UNSIGNED_PAYLOAD
    signing_key: bytes = b""
    amz_date: str = ""
    scope: str = ""
    seed_signature: str = ""

    @property
    def anonymous(self) -> bool:
        return self.key is None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """The key derived from ``secret`` for one day, region and service (kept: it is the same all day)."""
    return _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str, drop: str | None = None) -> str:
    """The query string as SigV4 signs it: every pair decoded, re-encoded, sorted (``drop``: left out)."""
    pairs = []
    for item in raw_query.split("&") if raw_query else ():
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote(name.replace("+", "%20")), unquote(value.replace("+", "%20"))
        if name == drop:
            continue
        pairs.append((_uri_encode(name), _uri_encode(value)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                      signed_headers: list[str], payload: str, *, drop_query: str | None = None) -> str:
    lines = []
    for name in signed_headers:
        if name not in headers:
            raise S3Error("SignatureDoesNotMatch", f"signed header {name!r} is not in the request")
        lines.append(f"{name}:{' '.join(headers[name].strip().split())}\n")
    return "\n".join([
        method, raw_path or "/", canonical_query(raw_query, drop_query), "".join(lines), ";".join(signed_headers),
        payload,
    ])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def _parse_date(amz_date: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise S3Error("AccessDenied", f"X-Amz-Date {amz_date!r} is not YYYYMMDDTHHMMSSZ") from None


def _credential(value: str, keys: Mapping[str, AccessKey]) -> tuple[AccessKey, str, str, str]:
    match = _CREDENTIAL.match(value)
    if not match:
        raise S3Error("AuthorizationQueryParametersError" if "/" not in value else "AccessDenied",
                      f"malformed credential {value.split('/', 1)[0]!r}/...")
    access_key, date, region, service = match.groups()
    if service != "s3":
        raise S3Error("AccessDenied", f"credential scope service {service!r} is not s3")
    key = keys.get(access_key)
    if key is None:
        raise S3Error("InvalidAccessKeyId", "the access key id does not exist in the gateway's records")
    return key, date, region, service


def _check(expected: bytes, given: str, canonical: str, to_sign: str) -> None:
    if not hmac.compare_digest(expected.hex(), given.lower()):
        raise S3Error("SignatureDoesNotMatch",
                      "the request signature calculated does not match the signature provided",
                      CanonicalRequest=canonical, StringToSign=to_sign)


def verify(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], query: Mapping[str, str],
           keys: Mapping[str, AccessKey], *, max_skew: float = 900.0, now: float | None = None) -> Identity:
    """Who signed this request; ``Identity(None)`` for an unsigned one (anonymous: the caller decides).

    :raises S3Error: ``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ``AccessDenied`` (expired, skewed).
    """
    now = time.time() if now is None else now
    auth = headers.get("authorization")
    if auth:
        return _verify_header(method, raw_path, raw_query, headers, keys, auth, max_skew, now)
    if "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
        return _verify_presigned(method, raw_path, raw_query, headers, query, keys, now)
    if "AWSAccessKeyId" in query or "Signature" in query:
        raise S3Error("AccessDenied", f"signature version 2 is not supported: presign with {ALGORITHM} (s3v4)")
    return Identity(None)


def _verify_header(method, raw_path, raw_query, headers, keys, auth, max_skew, now) -> Identity:
    algorithm, _, rest = auth.partition(" ")
    if algorithm != ALGORITHM:
        raise S3Error("AccessDenied", f"unsupported authorization {algorithm or auth[:16]!r}: only {ALGORITHM}")
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    try:
        key, date, region, service = _credential(fields["Credential"], keys)
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except KeyError as err:
        raise S3Error("AccessDenied", f"the Authorization header has no {err.args[0]}") from None
    amz_date = headers.get("x-amz-date", "")
    if not amz_date:
        raise S3Error("AccessDenied", "a signed request needs an X-Amz-Date header")
    if abs(now - _parse_date(amz_date)) > max_skew:
        raise S3Error("RequestTimeTooSkewed", "the difference between the request time and the gateway's time is "
                      "too large")
    if not amz_date.startswith(date):
        raise S3Error("SignatureDoesNotMatch", "the credential's date is not the request's date")
    payload = headers.get("x-amz-content-sha256")
    if not payload:
        raise S3Error("InvalidRequest", "missing required header for this request: x-amz-content-sha256")
    if payload not in (UNSIGNED_PAYLOAD, *STREAMING) and not _HEX64.match(payload):
        raise S3Error("InvalidArgument", "x-amz-content-sha256 must be a hex SHA-256, UNSIGNED-PAYLOAD or STREAMING-*")
    if "host" not in signed_headers:
        raise S3Error("AccessDenied", "the host header must be signed")
    canonical = canonical_request(method, raw_path, raw_query, headers, signed_headers, payload)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = string_to_sign(amz_date, scope, canonical)
    skey = signing_key(key.secret, date, region, service)
    _check(hmac.new(skey, to_sign.encode(), hashlib.sha256).digest(), signature, canonical, to_sign)
    return Identity(key, payload, skey, amz_date, scope, signature.lower())


def _verify_presigned(method, raw_path, raw_query, headers, query, keys, now) -> Identity:
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise S3Error("AuthorizationQueryParametersError", f"X-Amz-Algorithm must be {ALGORITHM}")
    try:
        key, date, region, service = _credential(query["X-Amz-Credential"], keys)
        amz_date, signature = query["X-Amz-Date"], query["X-Amz-Signature"]
        signed_headers = query["X-Amz-SignedHeaders"].split(";")
        expires = int(query["X-Amz-Expires"])
    except KeyError as err:
        raise S3Error("AuthorizationQueryParametersError", f"the presigned URL has no {err.args[0]}") from None
    except ValueError:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds") from None
    if not 0 < expires <= MAX_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError", f"X-Amz-Expires must be 1..{MAX_EXPIRES} seconds")
    signed_at = _parse_date(amz_date)
    if now > signed_at + expires:
        raise S3Error("AccessDenied", "request has expired", Expires=str(expires))
    if now < signed_at - 900:
        raise S3Error("AccessDenied", "the presigned URL is dated in the future")
    payload = query.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    canonical = canonical_request(method, raw_path, raw_query, headers, signed_headers, payload,
                                  drop_query="X-Amz-Signature")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = string_to_sign(amz_date, scope, canonical)
    skey = signing_key(key.secret, date, region, service)
    _check(hmac.new(skey, to_sign.encode(), hashlib.sha256).digest(), signature, canonical, to_sign)
    return Identity(key, payload, skey, amz_date, scope, signature.lower())


class ChunkedDecoder:
    """Decodes an ``aws-chunked`` body incrementally, verifying each chunk's signature (signed modes) and
    collecting the trailing headers; data is passed on as it arrives (a chunk is never held whole), so the
    caller must treat what it received as unverified until :meth:`finish` returns."""

    _MAX_LINE = 8192

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._signed = identity.payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        self._previous = identity.seed_signature
        self._buffer = bytearray()
        self._state = "header"
        self._remaining = 0
        self._chunk_signature = ""
        self._hash = hashlib.sha256()
        self.trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []
        self.decoded = 0

    def _chunk_string(self, digest: str) -> str:
        i = self._identity
        return f"{ALGORITHM}-PAYLOAD\n{i.amz_date}\n{i.scope}\n{self._previous}\n{EMPTY_SHA256}\n{digest}"

    def _verify_chunk(self, digest: str) -> None:
        if not self._signed:
            return
        to_sign = self._chunk_string(digest)
        expected = hmac.new(self._identity.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch", "a chunk's signature does not match (aws-chunked body)")
        self._previous = expected

    def _line(self) -> str | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > self._MAX_LINE:
                raise S3Error("IncompleteBody", "an aws-chunked header line is too long")
            return None
        line = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 2]
        return line

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data`` (more of the body)."""
        self._buffer += data
        while self._buffer:
            if self._state == "header":
                line = self._line()
                if line is None:
                    return
                size_text, _, ext = line.partition(";")
                try:
                    self._remaining = int(size_text.strip(), 16)
                except ValueError:
                    raise S3Error("IncompleteBody", f"bad aws-chunked chunk header {line[:40]!r}") from None
                name, _, value = ext.partition("=")
                if self._signed and name.strip() != "chunk-signature":
                    raise S3Error("SignatureDoesNotMatch", "a signed aws-chunked chunk has no chunk-signature")
                self._chunk_signature = value.strip().lower()
                self._hash = hashlib.sha256()
                if self._remaining == 0:
                    self._verify_chunk(EMPTY_SHA256)
                    self._state = "trailer"
                else:
                    self._state = "data"
            elif self._state == "data":
                take = bytes(self._buffer[: self._remaining])
                del self._buffer[: len(take)]
                self._remaining -= len(take)
                self._hash.update(take)
                self.decoded += len(take)
                yield take
                if self._remaining == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(self._buffer) < 2:
                    return
                if bytes(self._buffer[:2]) != b"\r\n":
                    raise S3Error("IncompleteBody", "an aws-chunked chunk does not end with CRLF")
                del self._buffer[:2]
                self._verify_chunk(self._hash.hexdigest())
                self._state = "header"
            elif self._state == "trailer":
                line = self._line()
                if line is None:
                    return
                if not line:
                    self._state = "done"
                    continue
                name, _, value = line.partition(":")
                self.trailers[name.strip().lower()] = value.strip()
                if name.strip().lower() != "x-amz-trailer-signature":
                    self._trailer_lines.append(f"{name.strip().lower()}:{value.strip()}\n")
            else:
                raise S3Error("IncompleteBody", "bytes after the end of an aws-chunked body")

    def finish(self) -> None:
        """Check the body ended where it should (the final chunk, the trailers and their signature)."""
        if self._state == "trailer" and not self._buffer:
            self._state = "done"  # no trailer section: the final chunk's CRLF alone
        if self._state != "done":
            raise S3Error("IncompleteBody", "the aws-chunked body ended before its final chunk")
        if self._identity.payload == STREAMING_SIGNED_TRAILER:
            i = self._identity
            digest = hashlib.sha256("".join(self._trailer_lines).encode()).hexdigest()
            to_sign = f"{ALGORITHM}-TRAILER\n{i.amz_date}\n{i.scope}\n{self._previous}\n{digest}"
            expected = hmac.new(i.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.trailers.get("x-amz-trailer-signature", "")):
                raise S3Error("SignatureDoesNotMatch", "the aws-chunked trailer's signature does not match")
