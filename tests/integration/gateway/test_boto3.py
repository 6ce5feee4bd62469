"""The gateway driven by boto3 over a real uvicorn server: a bucket that is a union of HDFS (the devstack's
WebHDFS server) and S3 (moto), with a cache; every API, errors as S3 reports them."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest
import requests
from botocore.exceptions import ClientError

from tests.client_requests import hdfs_requests
from tests.integration.gateway.conftest import MOUNT, READER, put, s3_client, served_mount

pytestmark = pytest.mark.integration


def _code(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def _keys(pages) -> list[str]:
    return [obj["Key"] for page in pages for obj in page.get("Contents", ())]


def test_list_buckets_and_head_bucket(s3):
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [MOUNT]
    s3.head_bucket(Bucket=MOUNT)
    with pytest.raises(ClientError) as missing:
        s3.list_objects_v2(Bucket="no-such-mount")
    assert _code(missing.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as head:
        s3.head_bucket(Bucket="no-such-mount")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.hdfs_servers  # on the devstack's WebHDFS server and on Apache Hadoop's
def test_a_file_on_both_members_is_listed_once(lake, s3):
    """A migration between its copy and its removal: the file is in HDFS and in S3; the listing shows it once,
    with the read-priority member's (S3's) size."""
    put(lake, "hdfs", "t/moving.bin", b"h" * 10)
    put(lake, "s3", "t/moving.bin", b"s" * 7)
    put(lake, "hdfs", "t/onprem.bin", b"1")
    put(lake, "s3", "t/cloud.bin", b"22")
    listed = s3.list_objects_v2(Bucket=MOUNT, Prefix="t/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("t/cloud.bin", 2), ("t/moving.bin", 7), ("t/onprem.bin", 1)]
    assert s3.get_object(Bucket=MOUNT, Key="t/moving.bin")["Body"].read() == b"s" * 7


def test_listing_is_in_s3_order_paged_with_delimiters_and_markers(lake, s3):
    names = ["a-b", "a.txt", "a/x", "a/y/z", "a0", "b", "c/d/e/f"]
    for i, name in enumerate(names):
        put(lake, "hdfs" if i % 2 else "s3", f"o/{name}", name.encode())
    keys = [f"o/{name}" for name in names]
    assert sorted(keys) == keys  # S3 (byte) order: "a-b" < "a.txt" < "a/x" < "a0"
    paginator = s3.get_paginator("list_objects_v2")
    assert _keys(paginator.paginate(Bucket=MOUNT, Prefix="o/")) == keys
    assert _keys(paginator.paginate(Bucket=MOUNT, Prefix="o/", PaginationConfig={"PageSize": 2})) == keys
    pages = list(paginator.paginate(Bucket=MOUNT, Prefix="o/", Delimiter="/", PaginationConfig={"PageSize": 1}))
    assert _keys(pages) == ["o/a-b", "o/a.txt", "o/a0", "o/b"]
    assert [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", ())] == ["o/a/", "o/c/"]
    assert _keys([s3.list_objects_v2(Bucket=MOUNT, Prefix="o/a", StartAfter="o/a/x")]) == ["o/a/y/z", "o/a0"]
    assert _keys([s3.list_objects_v2(Bucket=MOUNT, Prefix="o/a.")]) == ["o/a.txt"]
    first = s3.list_objects_v2(Bucket=MOUNT, Prefix="o/", MaxKeys=3, FetchOwner=True)
    assert first["IsTruncated"] and first["KeyCount"] == 3 and "Owner" in first["Contents"][0]
    rest = s3.list_objects_v2(Bucket=MOUNT, Prefix="o/", ContinuationToken=first["NextContinuationToken"])
    assert _keys([first, rest]) == keys and not rest["IsTruncated"]
    v1 = s3.get_paginator("list_objects")
    assert _keys(v1.paginate(Bucket=MOUNT, Prefix="o/", PaginationConfig={"PageSize": 2})) == keys
    with pytest.raises(ClientError) as bad:
        s3.list_objects_v2(Bucket=MOUNT, ContinuationToken="not-a-token")
    assert _code(bad.value) == "InvalidArgument"


def test_get_ranges_conditions_and_a_stable_etag(lake, s3):
    data = os.urandom(300_000)
    put(lake, "hdfs", "g/data.bin", data)
    head = s3.head_object(Bucket=MOUNT, Key="g/data.bin")
    listed = s3.list_objects_v2(Bucket=MOUNT, Prefix="g/")["Contents"][0]
    assert head["ContentLength"] == len(data) and head["ETag"] == listed["ETag"]
    whole = s3.get_object(Bucket=MOUNT, Key="g/data.bin")
    assert whole["Body"].read() == data and whole["ETag"] == head["ETag"]
    part = s3.get_object(Bucket=MOUNT, Key="g/data.bin", Range="bytes=1000-1999")
    assert part["Body"].read() == data[1000:2000] and part["ContentRange"] == f"bytes 1000-1999/{len(data)}"
    assert s3.get_object(Bucket=MOUNT, Key="g/data.bin", Range="bytes=-10")["Body"].read() == data[-10:]
    assert s3.get_object(Bucket=MOUNT, Key="g/data.bin", IfMatch=head["ETag"])["Body"].read() == data
    with pytest.raises(ClientError) as bad_range:
        s3.get_object(Bucket=MOUNT, Key="g/data.bin", Range=f"bytes={len(data)}-")
    assert _code(bad_range.value) == "InvalidRange"
    with pytest.raises(ClientError) as unchanged:
        s3.get_object(Bucket=MOUNT, Key="g/data.bin", IfNoneMatch=head["ETag"])
    assert unchanged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as failed:
        s3.get_object(Bucket=MOUNT, Key="g/data.bin", IfMatch='"0123"')
    assert _code(failed.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as not_modified:
        s3.get_object(Bucket=MOUNT, Key="g/data.bin", IfModifiedSince=datetime.now(timezone.utc) + timedelta(days=1))
    assert not_modified.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=MOUNT, Key="g/none.bin")
    assert _code(missing.value) == "NoSuchKey"
    s3.put_object(Bucket=MOUNT, Key="g/data.bin", Body=data[:10])  # a new version (in S3, read first): a new ETag
    assert s3.head_object(Bucket=MOUNT, Key="g/data.bin")["ETag"] != head["ETag"]
    assert s3.get_object(Bucket=MOUNT, Key="g/data.bin")["Body"].read() == data[:10]


def test_gets_go_through_the_mounts_cache(lake, s3, gateway, hdfs_server):
    data = os.urandom(200_000)
    put(lake, "hdfs", "c/warm.bin", data)
    cache = served_mount(gateway).cache
    assert cache is not None and cache.lookup("c/warm.bin") is None
    assert s3.get_object(Bucket=MOUNT, Key="c/warm.bin")["Body"].read() == data  # fills the cache
    assert cache.lookup("c/warm.bin") is not None
    with hdfs_requests(hdfs_server) as webhdfs:
        opens = webhdfs().get("datanode.OPEN", 0) + webhdfs().get("OPEN", 0)
        assert s3.get_object(Bucket=MOUNT, Key="c/warm.bin")["Body"].read() == data
        assert s3.get_object(Bucket=MOUNT, Key="c/warm.bin", Range="bytes=5-9")["Body"].read() == data[5:10]
        assert webhdfs().get("datanode.OPEN", 0) + webhdfs().get("OPEN", 0) == opens  # served from the tier


def test_put_goes_to_the_create_member_and_bad_digests_leave_nothing(lake, s3):
    s3.put_object(Bucket=MOUNT, Key="p/new.bin", Body=b"payload")
    assert lake.members["s3"].exists("p/new.bin") and not lake.members["hdfs"].exists("p/new.bin")
    assert s3.get_object(Bucket=MOUNT, Key="p/new.bin")["Body"].read() == b"payload"
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as bad:
        s3.put_object(Bucket=MOUNT, Key="p/bad.bin", Body=b"payload", ContentMD5=wrong_md5)
    assert _code(bad.value) == "BadDigest"
    with pytest.raises(ClientError) as bad_sum:
        s3.put_object(Bucket=MOUNT, Key="p/bad.bin", Body=b"payload", ChecksumCRC32C="AAAAAA==")
    assert _code(bad_sum.value) == "BadDigest"
    assert not lake.exists("p/bad.bin")
    s3.put_object(Bucket=MOUNT, Key="p/sum.bin", Body=b"payload", ChecksumAlgorithm="SHA256")
    assert lake.exists("p/sum.bin")


def test_multipart_upload_and_a_wrong_part_list(lake, s3):
    part1, part2 = os.urandom(5 * 1024 * 1024), os.urandom(1000)
    upload = s3.create_multipart_upload(Bucket=MOUNT, Key="m/big.bin")["UploadId"]
    e1 = s3.upload_part(Bucket=MOUNT, Key="m/big.bin", UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=MOUNT, Key="m/big.bin", UploadId=upload, PartNumber=2, Body=part2)["ETag"]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=MOUNT, Key="m/big.bin", UploadId=upload)["Parts"]] == [1, 2]
    assert not lake.exists("m/big.bin")  # nothing visible before the Complete
    for parts, code in (
        ([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e1}], "InvalidPart"),
        ([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}], "InvalidPart"),
        ([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}], "InvalidPartOrder"),
    ):
        with pytest.raises(ClientError) as wrong:
            s3.complete_multipart_upload(Bucket=MOUNT, Key="m/big.bin", UploadId=upload,
                                         MultipartUpload={"Parts": parts})
        assert _code(wrong.value) == code
    assert not lake.exists("m/big.bin")
    s3.complete_multipart_upload(Bucket=MOUNT, Key="m/big.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                            {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket=MOUNT, Key="m/big.bin")["Body"].read() == part1 + part2
    assert lake.members["s3"].exists("m/big.bin")
    with pytest.raises(ClientError) as gone:
        s3.upload_part(Bucket=MOUNT, Key="m/big.bin", UploadId=upload, PartNumber=3, Body=b"x")
    assert _code(gone.value) == "NoSuchUpload"
    aborted = s3.create_multipart_upload(Bucket=MOUNT, Key="m/aborted.bin")["UploadId"]
    s3.abort_multipart_upload(Bucket=MOUNT, Key="m/aborted.bin", UploadId=aborted)
    with pytest.raises(ClientError) as no_upload:
        s3.list_parts(Bucket=MOUNT, Key="m/aborted.bin", UploadId=aborted)
    assert _code(no_upload.value) == "NoSuchUpload"
    data = os.urandom(9 * 1024 * 1024)  # boto3's managed transfer: multipart with 8 MiB parts
    s3.upload_fileobj(io.BytesIO(data), MOUNT, "m/managed.bin")
    assert s3.get_object(Bucket=MOUNT, Key="m/managed.bin")["Body"].read() == data


def test_copy_delete_and_delete_objects(lake, s3):
    put(lake, "hdfs", "d/src.bin", b"source bytes")
    s3.copy_object(Bucket=MOUNT, Key="d/copy.bin", CopySource={"Bucket": MOUNT, "Key": "d/src.bin"})
    assert s3.get_object(Bucket=MOUNT, Key="d/copy.bin")["Body"].read() == b"source bytes"
    with pytest.raises(ClientError) as other_bucket:
        s3.copy_object(Bucket=MOUNT, Key="d/x.bin", CopySource={"Bucket": "elsewhere", "Key": "d/src.bin"})
    assert _code(other_bucket.value) == "NotImplemented"
    s3.delete_object(Bucket=MOUNT, Key="d/copy.bin")
    s3.delete_object(Bucket=MOUNT, Key="d/never-there.bin")  # S3: deleting a missing key succeeds
    assert not lake.exists("d/copy.bin")
    put(lake, "s3", "d/src.bin", b"a copy in both members")
    result = s3.delete_objects(Bucket=MOUNT, Delete={"Objects": [{"Key": "d/src.bin"}, {"Key": "d/../x"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["d/src.bin"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("d/../x", "AccessDenied")]
    assert not lake.members["hdfs"].exists("d/src.bin") and not lake.members["s3"].exists("d/src.bin")


def test_signatures_keys_and_permissions(lake, s3, gateway):
    put(lake, "hdfs", "s/file.bin", b"secret data")
    with pytest.raises(ClientError) as unsigned:
        s3_client(gateway.endpoint, key=None).get_object(Bucket=MOUNT, Key="s/file.bin")
    assert _code(unsigned.value) == "AccessDenied"
    with pytest.raises(ClientError) as forged:
        s3_client(gateway.endpoint, key=(READER[0], "not-the-secret")).get_object(Bucket=MOUNT, Key="s/file.bin")
    assert _code(forged.value) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as unknown:
        s3_client(gateway.endpoint, key=("AKIDNOBODY", "x")).list_buckets()
    assert _code(unknown.value) == "InvalidAccessKeyId"
    reader = s3_client(gateway.endpoint, key=READER)
    assert reader.get_object(Bucket=MOUNT, Key="s/file.bin")["Body"].read() == b"secret data"
    with pytest.raises(ClientError) as read_only:
        reader.put_object(Bucket=MOUNT, Key="s/new.bin", Body=b"x")
    assert _code(read_only.value) == "AccessDenied" and not lake.exists("s/new.bin")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": MOUNT, "Key": "s/file.bin"}, ExpiresIn=300)
    assert requests.get(url, timeout=30).content == b"secret data"
    tampered = requests.get(url.replace("s/file.bin", "s/other.bin"), timeout=30)
    assert tampered.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in tampered.content
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": MOUNT, "Key": "s/presigned.bin"})
    assert requests.put(put_url, data=b"uploaded", timeout=30).status_code == 200
    assert s3.get_object(Bucket=MOUNT, Key="s/presigned.bin")["Body"].read() == b"uploaded"


def _signed_raw(endpoint: str, method: str, raw_path: str, body: bytes = b"") -> requests.Response:
    """A request whose path is sent exactly as given (no client normalization), signed with the writer key."""
    import http.client
    from urllib.parse import urlsplit

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.integration.gateway.conftest import WRITER

    parts = urlsplit(endpoint)
    request = AWSRequest(method=method, url=f"{endpoint}{raw_path}", data=body)
    S3SigV4Auth(Credentials(*WRITER), "s3", "us-east-1").add_auth(request)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest(method, raw_path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", parts.netloc)  # as signed
    for name, value in request.headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    result = requests.Response()
    result.status_code, result._content = response.status, response.read()
    connection.close()
    return result


def test_keys_never_escape_the_mount(lake, s3, gateway):
    for raw_path, status, code in (
        (f"/{MOUNT}/a/../../outside.bin", 403, "AccessDenied"),
        (f"/{MOUNT}/a/%00b", 400, "InvalidArgument"),
        (f"/{MOUNT}/a//b", 400, "InvalidArgument"),
    ):
        response = _signed_raw(gateway.endpoint, "PUT", raw_path, b"x")
        assert response.status_code == status and f"<Code>{code}</Code>".encode() in response.content, raw_path
    with pytest.raises(ClientError) as too_long:
        s3.put_object(Bucket=MOUNT, Key="k" * 1025, Body=b"x")
    assert _code(too_long.value) == "KeyTooLongError"
    assert s3.list_objects_v2(Bucket=MOUNT).get("KeyCount") == 0


def test_a_client_disconnecting_mid_upload_leaves_nothing(lake, gateway, tmp_path):
    """A PUT announcing 8 MiB that sends 1 MiB then closes: no object, no spooled file left."""
    from urllib.parse import urlsplit

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.integration.gateway.conftest import WRITER

    parts = urlsplit(gateway.endpoint)
    path = f"/{MOUNT}/u/half.bin"
    request = AWSRequest(method="PUT", url=f"{gateway.endpoint}{path}",
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(8 << 20)})
    S3SigV4Auth(Credentials(*WRITER), "s3", "us-east-1").add_auth(request)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head.encode() + os.urandom(1 << 20))
    spool = tmp_path / "spool"
    # the server notices the disconnect and removes the spooled body; a second request is served after it
    s3 = s3_client(gateway.endpoint)
    while any(p.is_file() for p in spool.rglob("*")):
        s3.list_buckets()
    assert not lake.exists("u/half.bin")
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=MOUNT, Key="u/half.bin")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_page_over_a_large_s3_directory_costs_one_listing_request(lake, s3, hdfs_server):
    """1,100 keys in the S3 member (more than one ListObjectsV2 page): a page of 10 after a marker deep in the
    directory is one StartAfter request to S3, whatever the directory's size."""
    from urllib.parse import urlsplit

    from tests.client_requests import observing

    member = lake.members["s3"]
    for i in range(1100):
        member.client.put_object(Bucket=member.bucket, Key=f"{member.prefix}/wide/f{i:05d}", Body=b"")
    s3_port = urlsplit(hdfs_server.s3_endpoint).port
    sent: list[str] = []

    def observe(request, when):
        if when == "before" and urlsplit(request.url).port == s3_port and "list-type=2" in request.url:
            sent.append(request.url)

    with observing(observe):
        page = s3.list_objects_v2(Bucket=MOUNT, Prefix="wide/", StartAfter="wide/f01000", MaxKeys=10)
    assert [o["Key"] for o in page["Contents"]] == [f"wide/f{i:05d}" for i in range(1001, 1011)]
    assert len(sent) == 1 and "start-after=" in sent[0]
