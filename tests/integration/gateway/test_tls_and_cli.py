"""The gateway over TLS (boto3 then streams uploads as aws-chunked bodies with a trailing checksum) and started
by its CLI command, ``airflow hybrid gateway``, in a process of its own."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from airflow_hybrid.gateway.config import GatewayConfig
from airflow_hybrid.gateway.server import BackgroundGateway
from tests.integration.gateway.conftest import KEYS_CONN, MOUNT, put, s3_client

pytestmark = pytest.mark.integration


def _self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "gateway.crt", directory / "gateway.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls_with_aws_chunked_uploads_and_trailing_checksums(lake, lake_env, tmp_path):
    cert, key = _self_signed(tmp_path)
    config = GatewayConfig.from_connection([MOUNT], KEYS_CONN, port=0, spool_dir=tmp_path / "spool",
                                           ssl_certfile=cert, ssl_keyfile=key)
    with BackgroundGateway(config) as gateway:
        assert gateway.endpoint.startswith("https://127.0.0.1:")
        s3 = s3_client(gateway.endpoint, verify=cert)
        data = os.urandom(3 * 1024 * 1024 + 17)
        response = s3.put_object(Bucket=MOUNT, Key="tls/object.bin", Body=data, ChecksumAlgorithm="CRC32C")
        assert "ChecksumCRC32C" in response  # the trailer was read and checked
        assert s3.get_object(Bucket=MOUNT, Key="tls/object.bin")["Body"].read() == data
        assert lake.members["s3"].exists("tls/object.bin")
        put(lake, "hdfs", "tls/onprem.bin", b"on-prem bytes")
        assert s3.get_object(Bucket=MOUNT, Key="tls/onprem.bin")["Body"].read() == b"on-prem bytes"
        anonymous = s3_client(gateway.endpoint, key=None, verify=cert)
        with pytest.raises(ClientError) as unsigned:
            anonymous.list_objects_v2(Bucket=MOUNT)
        assert unsigned.value.response["Error"]["Code"] == "AccessDenied"
        # closed before the server stops: asyncio waits up to 30 s for a TLS peer's close_notify otherwise
        s3.close()
        anonymous.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_cli_command_serves_a_mount(lake, lake_env, tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "airflow", "hybrid", "gateway", "--mount", f"lake={MOUNT}",
               "--port", str(port), "--auth-conn", KEYS_CONN, "--spool-dir", str(tmp_path / "spool")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ))
    try:
        while process.poll() is None:  # until it listens (or exits)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        assert process.poll() is None, process.stdout.read()
        put(lake, "hdfs", "cli/file.txt", b"served by the CLI")
        s3 = s3_client(f"http://127.0.0.1:{port}")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["lake"]
        assert s3.get_object(Bucket="lake", Key="cli/file.txt")["Body"].read() == b"served by the CLI"
    finally:
        process.terminate()
        status = process.wait(timeout=60)
    output = process.stdout.read()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal it captured
    assert status in (0, -signal.SIGTERM), output
    assert f"gateway: lake={MOUNT} on http://127.0.0.1:{port}" in output
