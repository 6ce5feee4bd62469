"""Unit-test fixtures: a union of two local directories standing in for HDFS and S3."""

from __future__ import annotations

import pytest


@pytest.fixture
def dirs(tmp_path):
    """``(hdfs, s3)``: the two member directories."""
    hdfs, s3 = tmp_path / "hdfs", tmp_path / "s3"
    hdfs.mkdir()
    s3.mkdir()
    return hdfs, s3


@pytest.fixture
def options(dirs):
    """Mount options over ``dirs``: read s3 then hdfs, create in s3 (the migration scenario's union)."""
    hdfs, s3 = dirs
    return {
        "members": {"hdfs": {"uri": f"file://{hdfs}"}, "s3": {"uri": f"file://{s3}"}},
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
    }
