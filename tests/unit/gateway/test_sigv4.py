"""SigV4 verification against botocore's signer and AWS's documented streaming example."""

from __future__ import annotations

import calendar
import time
from urllib.parse import unquote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from airflow_hybrid.gateway.config import AccessKey
from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.gateway.sigv4 import STREAMING_SIGNED, ChunkedDecoder, verify

KEYS = {"AKIDEXAMPLE": AccessKey("AKIDEXAMPLE", "s3cr3t/KEY+value", read_only=False)}


def _check(request: AWSRequest, *, keys=KEYS, now=None):
    url = urlsplit(request.url)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers.setdefault("host", url.netloc)
    query = dict(pair.split("=", 1) if "=" in pair else (pair, "") for pair in url.query.split("&") if pair)
    query = {unquote(k): unquote(v) for k, v in query.items()}
    return verify(request.method, url.path, url.query, headers, query, keys, now=now)


def _signed(method="GET", url="http://127.0.0.1:9000/lake/a%20b/c.parquet?list-type=2&prefix=x%2Fy", secret=None,
            body=b""):
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials("AKIDEXAMPLE", secret or KEYS["AKIDEXAMPLE"].secret), "s3", "us-east-1").add_auth(request)
    return request


def test_a_request_signed_by_botocore_verifies():
    identity = _check(_signed())
    assert identity.key.access_key == "AKIDEXAMPLE" and len(identity.payload) == 64
    assert _check(_signed("PUT", "http://127.0.0.1:9000/lake/k", body=b"data")).payload != "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize("tamper", ["secret", "path", "query", "header"])
def test_any_change_breaks_the_signature(tamper):
    request = _signed(secret="wrong" if tamper == "secret" else None)
    if tamper == "path":
        request.url = request.url.replace("c.parquet", "d.parquet")
    elif tamper == "query":
        request.url = request.url.replace("prefix=x", "prefix=z")
    elif tamper == "header":
        date = request.headers["X-Amz-Date"]
        request.headers.replace_header("X-Amz-Date", date[:-3] + ("02Z" if date.endswith("01Z") else "01Z"))
    with pytest.raises(S3Error) as err:
        _check(request)
    assert err.value.code == "SignatureDoesNotMatch"


def test_unknown_keys_skewed_clocks_and_unsigned_requests():
    with pytest.raises(S3Error) as unknown:
        _check(_signed(), keys={})
    assert unknown.value.code == "InvalidAccessKeyId"
    with pytest.raises(S3Error) as skewed:
        _check(_signed(), now=time.time() + 3600)
    assert skewed.value.code == "RequestTimeTooSkewed"
    assert _check(AWSRequest(method="GET", url="http://127.0.0.1:9000/lake/k")).anonymous


def test_presigned_urls_verify_until_they_expire():
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/lake/dir/file.bin")
    S3SigV4QueryAuth(Credentials("AKIDEXAMPLE", KEYS["AKIDEXAMPLE"].secret), "s3", "us-east-1", expires=60) \
        .add_auth(request)
    assert _check(request).payload == "UNSIGNED-PAYLOAD"
    with pytest.raises(S3Error) as expired:
        _check(request, now=time.time() + 120)
    assert expired.value.code == "AccessDenied"
    request.url = request.url.replace("file.bin", "other.bin")
    with pytest.raises(S3Error) as forged:
        _check(request)
    assert forged.value.code == "SignatureDoesNotMatch"


# AWS's example of a chunked upload ("Signature Calculations for the Authorization Header: Transferring Payload
# in Multiple Chunks"): 66560 bytes of 'a' in chunks of 65536 and 1024 bytes, then the final chunk.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": STREAMING_SIGNED,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
    "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
}
EXAMPLE_CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]


def _example_identity():
    keys = {"AKIAIOSFODNN7EXAMPLE": AccessKey("AKIAIOSFODNN7EXAMPLE", EXAMPLE_SECRET, read_only=False)}
    now = calendar.timegm(time.strptime("20130524T000000Z", "%Y%m%dT%H%M%SZ"))
    return verify("PUT", "/examplebucket/chunkObject.txt", "", EXAMPLE_HEADERS, {}, keys, now=now)


def _example_body(signatures=None) -> bytes:
    body = b""
    for (size, signature), override in zip(EXAMPLE_CHUNKS, signatures or [None] * 3, strict=True):
        body += f"{size:x};chunk-signature={override or signature}\r\n".encode() + b"a" * size + b"\r\n"
    return body


def test_awss_streaming_example_decodes_chunk_by_chunk():
    identity = _example_identity()
    assert identity.seed_signature.startswith("4f232c43")
    decoder = ChunkedDecoder(identity)
    body = _example_body()
    out = b"".join(data for i in range(0, len(body), 777) for data in decoder.feed(body[i:i + 777]))
    decoder.finish()
    assert len(body) == 66824 and out == b"a" * 66560


def test_a_chunk_with_a_wrong_signature_or_a_missing_end_is_refused():
    bad = _example_body([None, "0" * 64, None])
    decoder = ChunkedDecoder(_example_identity())
    with pytest.raises(S3Error) as err:
        list(decoder.feed(bad))
    assert err.value.code == "SignatureDoesNotMatch"
    cut = ChunkedDecoder(_example_identity())
    list(cut.feed(_example_body()[:60000]))
    with pytest.raises(S3Error) as short:
        cut.finish()
    assert short.value.code == "IncompleteBody"
