"""What both HDFS servers answer, raw: the devstack's WebHDFS server must answer as Apache Hadoop does for
every operation the store uses (checked here against a real NameNode and DataNode, Hadoop 3.5.0)."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


@pytest.fixture
def base(hdfs_server):
    return f"http://{hdfs_server.webhdfs_host}:{hdfs_server.webhdfs_port}/webhdfs/v1"


def _create(base: str, path: str, data: bytes, user: str) -> requests.Response:
    redirect = requests.put(f"{base}{path}", params={"op": "CREATE", "user.name": user}, allow_redirects=False)
    assert redirect.status_code == 307, redirect.text
    return requests.put(redirect.headers["Location"], data=data)


def test_open_at_or_past_the_end_of_a_non_empty_file_is_403_ioexception(hdfs_server, base):
    path = f"/tmp/servers-{uuid.uuid4().hex[:8]}/three"
    assert _create(base, path, b"abc", hdfs_server.user).status_code == 201
    for offset in (3, 100):
        answer = requests.get(f"{base}{path}", params={"op": "OPEN", "offset": offset, "user.name": hdfs_server.user})
        assert answer.status_code == 403
        remote = answer.json()["RemoteException"]
        assert remote["exception"] == "IOException"
        assert f"Offset={offset} out of the range" in remote["message"]
