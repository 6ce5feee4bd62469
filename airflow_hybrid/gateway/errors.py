"""S3 errors as S3 reports them: an HTTP status, a code and an XML body (``<Error><Code>...``)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from airflow_hybrid.exceptions import HybridError

#: HTTP status of each error code the gateway answers with.
STATUS = {
    "AccessDenied": 403,
    "BadDigest": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
    "InvalidAccessKeyId": 403,
    "AuthorizationQueryParametersError": 400,
    "ExpiredToken": 400,
    "EntityTooLarge": 400,
    "BucketAlreadyOwnedByYou": 409,
}


class S3Error(HybridError):
    """A request the gateway refuses or could not serve, answered as S3's ``<Error>`` document."""

    def __init__(self, code: str, message: str, resource: str = "", **fields: str) -> None:
        super().__init__(f"{code}: {message}" + (f" ({resource})" if resource else ""))
        self.code = code
        self.message = message
        self.resource = resource
        self.fields = fields

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def to_xml(self, request_id: str = "") -> bytes:
        extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in self.fields.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            f"<Resource>{escape(self.resource)}</Resource>{extra}<RequestId>{escape(request_id)}</RequestId></Error>"
        ).encode()
