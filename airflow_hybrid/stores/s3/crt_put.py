"""Single ``PutObject`` requests through the AWS Common Runtime's S3 client (``awscrt``): S3 option ``put_client: crt``.

botocore spends about 1.8 ms of CPU, most of it holding the GIL, on each ``PutObject``: its event hooks, the
request's serialisation, signing and user agent. In a migration of small files that is most of the client's work
per file. The CRT client builds, signs and sends the request in C on its own event-loop threads (about 0.5 ms of
CPU, the GIL released while it waits). It is set up from what the boto3 client resolved: the endpoint and
addressing style (a presigned URL of the bucket, made once), the region, the credentials (refreshed through
botocore's provider chain, as boto3's own CRT transfer manager does) and the TLS verification. Its answers come
back in botocore's shape, its refusals as botocore's ``ClientError``, so the store treats both clients alike.

What it does not do, where botocore would: follow a redirect to the bucket's region, send through a proxy, or
tell how often it retried (the CRT retries 5xx and dropped connections itself). A refused conditional put is
therefore always checked for being our own retried request. Multipart uploads and every other call stay on
botocore; the CRT client is used only for bodies below a part.

Measured in ``bench/bench_migrate.py`` (2 cores): where the client's CPU bounds a migration it moves more files
per second (Hadoop over WebHDFS, mixed sizes: 1.57x the raw pipeline against 1.18x with botocore), but each
put waits longer (the CRT's event loop, its callbacks into Python), so on many small files it is slower (over
RPC 1.18-1.34x against 1.99-2.32x): hence not the default.
"""

from __future__ import annotations

import io
import os
import urllib.request
import xml.etree.ElementTree as ElementTree
from typing import Any
from urllib.parse import quote, urlsplit

from botocore import UNSIGNED
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.s3.clients import shared_client

#: The operation name botocore's errors carry (and our error translation reads).
OPERATION = "PutObject"


class CrtPutClient:
    """``PutObject`` of one bucket through a CRT S3 client shared by the stores of one boto3 client.

    :param client: the store's boto3 S3 client (endpoint, region, credentials and addressing are read from it).
    :param client_key: the key the boto3 client is shared under (:mod:`.clients`), the CRT client's too;
        ``None`` for a client the store was given: its own CRT client.
    :param verify: TLS verification as the store resolved it: ``True``/``None`` (botocore's CA bundle),
        ``False``, or a CA bundle path.
    :param max_connections: connections the CRT client keeps open at most.
    :raises HybridConfigError: the environment names a proxy, which the CRT client would not use.
    """

    def __init__(self, client: Any, bucket: str, *, client_key: Any, verify: bool | str | None,
                 max_connections: int) -> None:
        if urllib.request.getproxies():
            raise HybridConfigError(
                "S3 option put_client=crt: the environment sets a proxy (HTTP(S)_PROXY), which the CRT client "
                "would not use; use put_client=classic")
        # Where botocore would send a PutObject of this bucket: its endpoint rules and addressing style, resolved
        # once. The key of the sample is replaced by each put's.
        sample = urlsplit(client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"},
                                                        ExpiresIn=60))
        self._host = sample.netloc
        self._prefix = sample.path[: -len("k")]
        self._endpoint = f"{sample.scheme}://{sample.netloc}"

        def make() -> Any:
            return _s3_client(client, https=sample.scheme == "https", verify=verify, max_connections=max_connections)

        self._crt = make() if client_key is None else shared_client(("crt", client_key), make)

    def url(self, key: str) -> str:
        return f"{self._endpoint}{self._path(key)}"

    def _path(self, key: str) -> str:
        return self._prefix + quote(key, safe="/~")

    def put(self, key: str, data: bytes, crc32c_b64: str, *, if_none_match: bool = False) -> dict[str, Any]:
        """Store ``data`` at ``key`` with its CRC32C, which S3 checks; the answer in botocore's shape.

        :raises ClientError: S3 refused it (the error code and message of its answer).
        :raises EndpointConnectionError: no answer (after the CRT client's retries).
        """
        from awscrt.exceptions import AwsCrtError
        from awscrt.http import HttpHeaders, HttpRequest
        from awscrt.s3 import S3RequestType, S3ResponseError

        headers = [("Host", self._host), ("Content-Length", str(len(data))),
                   ("x-amz-checksum-crc32c", crc32c_b64), ("x-amz-sdk-checksum-algorithm", "CRC32C")]
        if if_none_match:
            headers.append(("If-None-Match", "*"))
        answer: dict[str, Any] = {}

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            answer["status"], answer["headers"] = status_code, headers

        request = HttpRequest("PUT", self._path(key), HttpHeaders(headers), io.BytesIO(data))
        try:
            self._crt.make_request(type=S3RequestType.DEFAULT, operation_name=OPERATION, request=request,
                                   on_headers=on_headers).finished_future.result()
        except S3ResponseError as error:
            raise _client_error(error.status_code, error.headers or [], error.body) from None
        except AwsCrtError as error:
            raise EndpointConnectionError(endpoint_url=self.url(key), error=f"{error.name}: {error.message}") from None
        return _response(answer["status"], answer["headers"])


def _s3_client(client: Any, *, https: bool, verify: bool | str | None, max_connections: int) -> Any:
    """A CRT S3 client signing as ``client`` does (its region, its credentials, or unsigned)."""
    from awscrt.auth import AwsCredentials, AwsCredentialsProvider
    from awscrt.io import ClientBootstrap, ClientTlsContext, TlsContextOptions
    from awscrt.s3 import S3Client, S3RequestTlsMode
    from botocore.credentials import RefreshableCredentials
    from botocore.httpsession import get_cert_path

    provider = None
    if client.meta.config.signature_version is not UNSIGNED:
        credentials = client._get_credentials()  # what boto3's CRT transfer manager reads too
        if credentials is None:
            raise NoCredentialsError()
        if isinstance(credentials, RefreshableCredentials):

            def current() -> AwsCredentials:  # refreshed by botocore when they expire
                frozen = credentials.get_frozen_credentials()
                return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

            provider = AwsCredentialsProvider.new_delegate(current)
        else:  # keys that never change: no call back into Python (and its GIL) to sign each request
            frozen = credentials.get_frozen_credentials()
            provider = AwsCredentialsProvider.new_static(frozen.access_key, frozen.secret_key, frozen.token)
    tls = None
    if https:
        options = TlsContextOptions()
        if verify is False:
            options.verify_peer = False
        else:
            bundle = get_cert_path(True if verify is None else verify)
            if isinstance(bundle, str) and os.path.isdir(bundle):
                options.override_default_trust_store_from_path(ca_dirpath=bundle)
            elif isinstance(bundle, str):
                options.override_default_trust_store_from_path(ca_filepath=bundle)
        tls = ClientTlsContext(options).new_connection_options()
    return S3Client(
        bootstrap=ClientBootstrap.get_or_create_static_default(),
        region=client.meta.region_name or "us-east-1",
        credential_provider=provider,
        tls_mode=S3RequestTlsMode.ENABLED if https else S3RequestTlsMode.DISABLED,
        tls_connection_options=tls,
        max_active_connections_override=max_connections,
    )


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in pairs}


def _response(status: int, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A ``PutObject`` answer as botocore parses it: ``ETag``, ``ChecksumCRC32C``, ``ResponseMetadata``."""
    headers = _headers(pairs)
    response: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers,
                                                     "RetryAttempts": 0}}
    if "etag" in headers:
        response["ETag"] = headers["etag"]
    if "x-amz-checksum-crc32c" in headers:
        response["ChecksumCRC32C"] = headers["x-amz-checksum-crc32c"]
    if "x-amz-checksum-type" in headers:
        response["ChecksumType"] = headers["x-amz-checksum-type"]
    return response


def _client_error(status: int, pairs: list[tuple[str, str]], body: bytes | None) -> ClientError:
    """botocore's error for an S3 refusal: the ``Code`` and ``Message`` of its XML body, else the status."""
    code, message = str(status), ""
    if body:
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - the configured endpoint's answer, as botocore parses it
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
        except ElementTree.ParseError:
            message = body[:200].decode("utf-8", "replace")
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": _headers(pairs),
                                             "RetryAttempts": 0}}, OPERATION)
