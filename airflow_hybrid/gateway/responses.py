"""The XML documents of S3's responses (namespace ``http://s3.amazonaws.com/doc/2006-03-01/``)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote
from xml.sax.saxutils import escape

from airflow_hybrid.gateway.listing import ListPage
from airflow_hybrid.gateway.multipart import Part, Upload
from airflow_hybrid.gateway.objects import etag_of, iso_date

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER = "<Owner><ID>airflow-hybrid</ID><DisplayName>airflow-hybrid</DisplayName></Owner>"


def _doc(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{body}</{root}>'.encode()


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _encode(value: str, url: bool) -> str:
    return quote(value, safe="/") if url else value


def list_buckets(buckets: Iterable[str]) -> bytes:
    entries = "".join(f"<Bucket>{_el('Name', b)}<CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>"
                      for b in buckets)
    return _doc("ListAllMyBucketsResult", f"{OWNER}<Buckets>{entries}</Buckets>")


def _contents(page: ListPage, url: bool, owner: bool) -> str:
    out = []
    for item in page.contents:
        info = item.info
        out.append(
            f"<Contents>{_el('Key', _encode(item.key, url))}{_el('LastModified', iso_date(info.mtime))}"
            f"{_el('ETag', etag_of(info))}{_el('Size', info.size)}{OWNER if owner else ''}"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
    out += [f"<CommonPrefixes>{_el('Prefix', _encode(p.key, url))}</CommonPrefixes>" for p in page.prefixes]
    return "".join(out)


def list_objects_v2(bucket: str, page: ListPage, *, prefix: str, delimiter: str | None, max_keys: int,
                    start_after: str | None, token: str | None, next_token: str | None, url: bool,
                    owner: bool) -> bytes:
    body = [_el("Name", bucket), _el("Prefix", _encode(prefix, url))]
    if delimiter:
        body.append(_el("Delimiter", _encode(delimiter, url)))
    body += [_el("MaxKeys", max_keys), _el("KeyCount", len(page.items)),
             _el("IsTruncated", "true" if page.truncated else "false")]
    if url:
        body.append(_el("EncodingType", "url"))
    if start_after:
        body.append(_el("StartAfter", _encode(start_after, url)))
    if token:
        body.append(_el("ContinuationToken", token))
    if next_token:
        body.append(_el("NextContinuationToken", next_token))
    body.append(_contents(page, url, owner))
    return _doc("ListBucketResult", "".join(body))


def list_objects_v1(bucket: str, page: ListPage, *, prefix: str, delimiter: str | None, max_keys: int,
                    marker: str, url: bool) -> bytes:
    body = [_el("Name", bucket), _el("Prefix", _encode(prefix, url)), _el("Marker", _encode(marker, url))]
    if delimiter:
        body.append(_el("Delimiter", _encode(delimiter, url)))
    body += [_el("MaxKeys", max_keys), _el("IsTruncated", "true" if page.truncated else "false")]
    if url:
        body.append(_el("EncodingType", "url"))
    if page.truncated and page.items:
        body.append(_el("NextMarker", _encode(page.items[-1].key, url)))
    body.append(_contents(page, url, True))
    return _doc("ListBucketResult", "".join(body))


def copy_result(etag: str, mtime: float) -> bytes:
    return _doc("CopyObjectResult", _el("LastModified", iso_date(mtime)) + _el("ETag", etag))


def initiate_upload(upload: Upload) -> bytes:
    return _doc("InitiateMultipartUploadResult",
                _el("Bucket", upload.bucket) + _el("Key", upload.key) + _el("UploadId", upload.upload_id))


def complete_upload(bucket: str, key: str, location: str, etag: str) -> bytes:
    return _doc("CompleteMultipartUploadResult",
                _el("Location", location) + _el("Bucket", bucket) + _el("Key", key) + _el("ETag", etag))


def list_parts(upload: Upload, parts: list[Part]) -> bytes:
    body = [_el("Bucket", upload.bucket), _el("Key", upload.key), _el("UploadId", upload.upload_id),
            _el("IsTruncated", "false"), _el("MaxParts", 10000)]
    body += [f"<Part>{_el('PartNumber', p.number)}{_el('LastModified', iso_date(p.modified))}"
             f"{_el('ETag', p.etag)}{_el('Size', p.size)}</Part>" for p in parts]
    return _doc("ListPartsResult", "".join(body))


def list_uploads(bucket: str, uploads: list[Upload]) -> bytes:
    body = [_el("Bucket", bucket), _el("IsTruncated", "false"), _el("MaxUploads", 1000)]
    body += [f"<Upload>{_el('Key', u.key)}{_el('UploadId', u.upload_id)}{OWNER}"
             f"{_el('Initiated', iso_date(u.initiated))}</Upload>" for u in uploads]
    return _doc("ListMultipartUploadsResult", "".join(body))


def delete_result(deleted: list[str], errors: list[tuple[str, str, str]], quiet: bool) -> bytes:
    body = "" if quiet else "".join(f"<Deleted>{_el('Key', key)}</Deleted>" for key in deleted)
    body += "".join(f"<Error>{_el('Key', k)}{_el('Code', c)}{_el('Message', m)}</Error>" for k, c, m in errors)
    return _doc("DeleteResult", body)


def location(region: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{NS}">{escape(region)}' \
           "</LocationConstraint>".encode()
