"""The gateway's application on a real uvicorn server over a union of local directories: anonymous access,
a member failing mid-stream, directory markers, and the HTTP details of objects (ranges, conditions)."""

from __future__ import annotations

import io

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError

from airflow_hybrid.gateway.config import AccessKey, GatewayConfig, GatewayConfigError, parse_keys
from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.gateway.objects import parse_range
from airflow_hybrid.gateway.server import BackgroundGateway
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.stores.local import LocalStore
from tests.mounts import local_mount_extra

KEY = AccessKey("AKIDUNIT", "unit-secret", read_only=False)


class BreakingStream(io.RawIOBase):
    """Gives ``good`` bytes of a stream, then fails as a member dropping mid-read does."""

    def __init__(self, stream, good: int) -> None:
        self._stream, self._left = stream, good

    def readable(self) -> bool:
        return True

    def read(self, size=-1) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError("member connection reset mid-read")
        data = self._stream.read(min(self._left, size if size and size > 0 else self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._stream.close()
        super().close()


class BreakingStore(LocalStore):
    """A local member whose reads of ``broken/`` fail after 64 KiB."""

    def open_read(self, path, offset=0, length=None):
        stream = super().open_read(path, offset, length)
        return BreakingStream(stream, 65536) if path.startswith("broken/") else stream


def _mount(root) -> HybridMount:
    spec = local_mount_extra(root, "s3,hdfs", "s3")
    stores = {"s3": LocalStore(spec["members"]["s3"]["uri"]), "hdfs": BreakingStore(spec["members"]["hdfs"]["uri"])}
    return HybridMount.from_options("lake", spec, stores=stores)


def _client(endpoint: str, signed: bool = True):
    config = Config(signature_version="s3v4" if signed else UNSIGNED, s3={"addressing_style": "path"},
                    retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY.access_key,
                        aws_secret_access_key=KEY.secret, config=config)


@pytest.fixture
def mount(tmp_path):
    with _mount(tmp_path / "lake") as mount:
        yield mount


def test_anonymous_read_only_when_configured(mount, tmp_path):
    mount.members["hdfs"].write("pub/file.txt", io.BytesIO(b"public"))
    config = GatewayConfig(["lake"], {KEY.access_key: KEY}, anonymous="read", port=0, spool_dir=tmp_path / "s")
    with BackgroundGateway(config, {"lake": mount}) as gateway:
        anonymous = _client(gateway.endpoint, signed=False)
        assert anonymous.get_object(Bucket="lake", Key="pub/file.txt")["Body"].read() == b"public"
        with pytest.raises(ClientError) as denied:
            anonymous.put_object(Bucket="lake", Key="pub/new.txt", Body=b"x")
        assert denied.value.response["Error"]["Code"] == "AccessDenied" and not mount.exists("pub/new.txt")


def test_a_member_failing_mid_stream_is_an_error_never_a_short_object(mount, tmp_path):
    data = bytes(range(256)) * 1024  # 256 KiB, the member fails after 64 KiB
    mount.members["hdfs"].write("broken/file.bin", io.BytesIO(data))
    config = GatewayConfig(["lake"], {KEY.access_key: KEY}, port=0, spool_dir=tmp_path / "s")
    with BackgroundGateway(config, {"lake": mount}) as gateway:
        s3 = _client(gateway.endpoint)
        body = s3.get_object(Bucket="lake", Key="broken/file.bin")["Body"]
        assert body._content_length == str(len(data))
        with pytest.raises((IncompleteReadError, ResponseStreamingError)):
            body.read()
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "lake", "Key": "broken/file.bin"})
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, timeout=30).content  # noqa: B018 - the read is what fails
        assert s3.list_buckets()["Buckets"]  # the server still serves


def test_directory_markers_and_directories_are_not_objects(mount, tmp_path):
    config = GatewayConfig(["lake"], {KEY.access_key: KEY}, port=0, spool_dir=tmp_path / "s")
    with BackgroundGateway(config, {"lake": mount}) as gateway:
        s3 = _client(gateway.endpoint)
        s3.put_object(Bucket="lake", Key="made/dir/", Body=b"")  # as Hadoop's s3a marks a directory
        assert mount.info("made/dir").is_dir
        with pytest.raises(ClientError) as head:
            s3.head_object(Bucket="lake", Key="made/dir")
        assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        listed = s3.list_objects_v2(Bucket="lake", Prefix="made/", Delimiter="/")
        assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["made/dir/"]
        s3.delete_object(Bucket="lake", Key="made/dir/")
        with pytest.raises(ClientError) as bucket:
            s3.create_bucket(Bucket="another")
        assert bucket.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 409)


@pytest.mark.parametrize(("header", "span"), [
    (None, None), ("bytes=0-9", (0, 10)), ("bytes=90-", (90, 100)), ("bytes=-5", (95, 100)),
    ("bytes=95-200", (95, 100)), ("bytes=5-1", None), ("items=0-1", None), ("bytes=0-1,5-6", None),
])
def test_ranges(header, span):
    assert parse_range(header, 100) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(S3Error) as err:
        parse_range(header, 100)
    assert err.value.code == "InvalidRange" and err.value.status == 416


def test_keys_from_a_connection():
    keys = parse_keys("AKID1", "s1", {"keys": {"AKID2": {"secret": "s2", "read_only": "false",
                                                         "buckets": "lake,other"}}}, "connection 'k'")
    assert keys["AKID1"].read_only and not keys["AKID1"].allows("lake", write=True)
    assert keys["AKID2"].allows("lake", write=True) and not keys["AKID2"].allows("third", write=False)
    assert "s2" not in repr(keys["AKID2"])
    with pytest.raises(GatewayConfigError, match="keys.AKID3 needs a 'secret'"):
        parse_keys(None, None, {"keys": {"AKID3": {}}}, "connection 'k'")
    with pytest.raises(GatewayConfigError, match="anonymous"):
        GatewayConfig(["lake"], anonymous="sometimes")


def test_virtual_hosted_style_requests(mount, tmp_path):
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    mount.members["hdfs"].write("v/file.txt", io.BytesIO(b"virtual"))
    config = GatewayConfig(["lake"], {KEY.access_key: KEY}, port=0, spool_dir=tmp_path / "s")
    with BackgroundGateway(config, {"lake": mount}) as gateway:
        host = f"lake.localhost:{gateway.port}"
        request = AWSRequest(method="GET", url=f"http://{host}/v/file.txt")
        S3SigV4Auth(Credentials(KEY.access_key, KEY.secret), "s3", "us-east-1").add_auth(request)
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        connection.putrequest("GET", "/v/file.txt", skip_host=True)
        connection.putheader("Host", host)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"virtual")
        connection.close()
