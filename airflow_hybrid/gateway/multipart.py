"""Multipart uploads spooled to disk: each part a file under the upload's directory, the object written to the
mount only by ``CompleteMultipartUpload``, streamed from the parts in the order the client lists them.

Layout under the gateway's spool directory: ``uploads/<upload id>/upload.json`` (bucket, key, initiated) and
``part-<n>`` with ``part-<n>.json`` (size, MD5, checksums). A part uploaded again replaces the earlier one.
Complete claims the upload by renaming its directory (a second Complete or an Abort racing it finds nothing),
checks the part list (``InvalidPart``: a part missing or with another ETag; ``InvalidPartOrder``: not
ascending), then streams the parts to ``HybridMount.write`` (the ``collection.create`` members): nothing is
visible until that write completes. Nothing is held in memory but one read buffer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.gateway.spool import Spooled
from airflow_hybrid.ops.reader import ReadStream

MAX_PART_NUMBER = 10_000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # quoted MD5 of the part, as S3 gives it
    modified: float


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float


class PartsReader(ReadStream):
    """The parts' files read one after another as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._current: BinaryIO | None = None

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while True:
            if self._current is None:
                if not self._paths:
                    return b""
                self._current = open(self._paths.pop(0), "rb")  # noqa: SIM115 - closed when exhausted
            data = self._current.read(size)
            if data:
                return data
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class UploadStore:
    """The open multipart uploads of one gateway, under ``root`` (``<spool>/uploads``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id or ""):
            raise S3Error("NoSuchUpload", "the specified upload does not exist", upload_id)
        return self.root / upload_id

    def recover(self) -> int:
        """After a restart: give back the uploads a Complete had claimed when the gateway stopped (the client
        may retry it), remove half-aborted ones; returns how many were given back."""
        restored = 0
        for claimed in self.root.glob("completing-*"):
            upload_id = claimed.name.split("-")[1]
            try:
                os.rename(claimed, self.root / upload_id)
                restored += 1
            except OSError:
                shutil.rmtree(claimed, ignore_errors=True)
        for doomed in self.root.glob("aborting-*"):
            shutil.rmtree(doomed, ignore_errors=True)
        return restored

    def create(self, bucket: str, key: str) -> Upload:
        upload = Upload(uuid.uuid4().hex, bucket, key, time.time())
        directory = self.root / upload.upload_id
        directory.mkdir(mode=0o700)
        (directory / "upload.json").write_text(json.dumps(
            {"bucket": bucket, "key": key, "initiated": upload.initiated}))
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        try:
            meta = json.loads((self._dir(upload_id) / "upload.json").read_text())
        except (FileNotFoundError, ValueError):
            raise S3Error("NoSuchUpload", "the specified upload does not exist", upload_id) from None
        if meta["bucket"] != bucket or meta["key"] != key:
            raise S3Error("NoSuchUpload", "the specified upload does not exist for this key", upload_id)
        return Upload(upload_id, bucket, key, meta["initiated"])

    def add_part(self, upload: Upload, number: int, body: Spooled) -> Part:
        """Move the spooled ``body`` in as part ``number`` (replacing an earlier one)."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", f"part number must be an integer between 1 and {MAX_PART_NUMBER}",
                          ArgumentName="partNumber")
        directory = self._dir(upload.upload_id)
        part = Part(number, body.size, f'"{body.md5}"', time.time())
        try:
            os.replace(body.path, directory / f"part-{number:05d}")
            (directory / f"part-{number:05d}.json").write_text(json.dumps(part.__dict__))
        except FileNotFoundError:
            body.remove()
            raise S3Error("NoSuchUpload", "the upload was completed or aborted meanwhile", upload.upload_id) from None
        return part

    def parts(self, upload: Upload) -> list[Part]:
        directory = self._dir(upload.upload_id)
        found = []
        for meta in sorted(directory.glob("part-*.json")):
            try:
                found.append(Part(**json.loads(meta.read_text())))
            except (FileNotFoundError, ValueError):
                continue
        return found

    def uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        found = []
        for meta in self.root.glob("*/upload.json"):
            try:
                data = json.loads(meta.read_text())
            except (FileNotFoundError, ValueError):
                continue
            if data["bucket"] == bucket and data["key"].startswith(prefix):
                found.append(Upload(meta.parent.name, data["bucket"], data["key"], data["initiated"]))
        return sorted(found, key=lambda u: (u.key, u.initiated))

    def claim(self, upload: Upload, wanted: list[tuple[int, str]]) -> tuple[Path, list[Path], int]:
        """Take the upload for completion with the client's part list ``[(number, etag)]``: its claimed
        directory, the part files in order, the total size. The caller writes, then :meth:`discard` s."""
        if not wanted:
            raise S3Error("MalformedXML", "the part list of CompleteMultipartUpload is empty")
        numbers = [number for number, _ in wanted]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error("InvalidPartOrder", "the list of parts was not in ascending order")
        have = {part.number: part for part in self.parts(upload)}
        for number, etag in wanted:
            part = have.get(number)
            if part is None or part.etag.strip('"') != etag.strip().strip('"'):
                raise S3Error("InvalidPart", "one or more of the specified parts could not be found or their "
                              "entity tag did not match", PartNumber=str(number), ETag=etag)
        claimed = self.root / f"completing-{upload.upload_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self._dir(upload.upload_id), claimed)
        except FileNotFoundError:
            raise S3Error("NoSuchUpload", "the upload was completed or aborted meanwhile", upload.upload_id) from None
        paths = [claimed / f"part-{number:05d}" for number in numbers]
        return claimed, paths, sum(have[number].size for number in numbers)

    def release(self, upload: Upload, claimed: Path) -> None:
        """Give a claimed upload back (its write failed: the client may retry the Complete)."""
        try:
            os.rename(claimed, self._dir(upload.upload_id))
        except OSError:
            shutil.rmtree(claimed, ignore_errors=True)

    def discard(self, claimed: Path) -> None:
        shutil.rmtree(claimed, ignore_errors=True)

    def abort(self, upload: Upload) -> None:
        directory = self._dir(upload.upload_id)
        doomed = self.root / f"aborting-{upload.upload_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(directory, doomed)
        except FileNotFoundError:
            raise S3Error("NoSuchUpload", "the specified upload does not exist", upload.upload_id) from None
        shutil.rmtree(doomed, ignore_errors=True)
