"""The TPC-DS sample lake: generation with the wheel's extension, files per table, mtimes, Hive DDL."""

from __future__ import annotations

import datetime
import importlib.util
import io
import os
import re

import duckdb
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.schema import read_parquet_schema
from airflow_hybrid.stores.base import StoreFeatures
from airflow_hybrid.stores.local import LocalStore

OLDEST = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
NEWEST = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def mount(options):
    return HybridMount.from_options("lake", options)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One lake at scale factor 0.01 in the HDFS member, file mtimes spread over two months."""
    root = tmp_path_factory.mktemp("lake")
    hdfs, s3 = root / "hdfs", root / "s3"
    hdfs.mkdir()
    s3.mkdir()
    mount = HybridMount.from_options(
        "lake",
        {
            "members": {"hdfs": {"uri": f"file://{hdfs}"}, "s3": {"uri": f"file://{s3}"}},
            "priority.read": "s3,hdfs",
            "collection.create": "s3",
        },
    )
    lake = tpcds.write_tpcds(
        mount,
        member="hdfs",
        scale_factor=0.01,
        files_per_table={"store_sales": 5},
        mtime_range=(OLDEST, NEWEST),
    )
    return lake, hdfs, s3


def test_each_table_is_several_parquet_files_in_the_chosen_member(generated):
    lake, hdfs, s3 = generated
    assert sorted(os.listdir(hdfs / "tpcds")) == ["create-table.sql", "date_dim", "item", "store_sales"]
    assert sorted(os.listdir(hdfs / "tpcds" / "store_sales")) == [f"part-{i:05d}.parquet" for i in range(5)]
    assert sorted(os.listdir(hdfs / "tpcds" / "item")) == [f"part-{i:05d}.parquet" for i in range(4)]
    assert list(s3.iterdir()) == []  # nothing went to the mount's create member
    assert lake.tables["store_sales"].files == [f"tpcds/store_sales/part-{i:05d}.parquet" for i in range(5)]


def test_files_hold_every_generated_row_once(generated):
    lake, hdfs, _ = generated
    reference = tpcds.connect()
    reference.execute("CALL dsdgen(sf = 0.01)")
    for table in tpcds.TPCDS_TABLES:
        expected = reference.execute(f"SELECT count(*), count(DISTINCT COLUMNS(*)) FROM {table}").fetchone()
        got = duckdb.sql(
            f"SELECT count(*), count(DISTINCT COLUMNS(*)) FROM read_parquet('{hdfs}/tpcds/{table}/*.parquet')"
        ).fetchone()
        assert got == expected, table
        assert lake.tables[table].rows == expected[0]
    # Same content, not just the same counts: equal sizes and nothing of the source missing from the files.
    diff = reference.execute(
        f"SELECT count(*) FROM (SELECT * FROM store_sales EXCEPT ALL "
        f"SELECT * FROM read_parquet('{hdfs}/tpcds/store_sales/*.parquet'))"
    ).fetchone()[0]
    assert diff == 0


def test_store_sales_files_are_ordered_by_sale_date(generated):
    _, hdfs, _ = generated
    ranges = [
        duckdb.sql(
            f"SELECT min(ss_sold_date_sk), max(ss_sold_date_sk) FROM '{hdfs}/tpcds/store_sales/part-{i:05d}.parquet'"
        ).fetchone()
        for i in range(4)  # the last part also holds the rows without a sale date
    ]
    for (_, high), (low, _) in zip(ranges, ranges[1:], strict=False):
        assert high <= low


def test_file_mtimes_spread_over_the_range_oldest_part_first(generated):
    _, hdfs, _ = generated
    mtimes = [os.stat(hdfs / "tpcds" / "store_sales" / f"part-{i:05d}.parquet").st_mtime for i in range(5)]
    assert mtimes[0] == OLDEST.timestamp()
    assert mtimes[-1] == NEWEST.timestamp()
    assert mtimes == sorted(mtimes) and len(set(mtimes)) == 5
    assert mtimes[2] == (OLDEST.timestamp() + NEWEST.timestamp()) / 2


def test_hive_ddl_next_to_the_data(generated):
    lake, hdfs, _ = generated
    assert lake.ddl_path == "tpcds/create-table.sql"
    ddl = (hdfs / "tpcds" / "create-table.sql").read_text()
    for table in tpcds.TPCDS_TABLES:
        location = f"LOCATION 'file://{hdfs}/tpcds/{table}/';"
        assert re.search(
            rf"CREATE EXTERNAL TABLE {table} \(\n.*?\)\nSTORED AS PARQUET\n{location}", ddl, re.S
        )
    # Columns typed from the Parquet schema, in file order.
    schema = pq.read_schema(hdfs / "tpcds" / "store_sales" / "part-00000.parquet")
    block = ddl.split("CREATE EXTERNAL TABLE store_sales (\n")[1].split("\n)")[0]
    assert [line.strip().split()[0] for line in block.splitlines()] == schema.names
    assert "  ss_ext_sales_price DECIMAL(7,2)," in block
    assert "  d_date DATE," in ddl
    assert "  i_brand STRING," in ddl


def test_ddl_location_root_override_and_separate_ddl_step(generated, mount, dirs):
    _, hdfs_src, _ = generated
    hdfs, _ = dirs
    for table in tpcds.TPCDS_TABLES:  # reuse the generated files in a fresh mount
        (hdfs / "tpcds" / table).mkdir(parents=True)
        for part in os.listdir(hdfs_src / "tpcds" / table):
            (hdfs / "tpcds" / table / part).write_bytes((hdfs_src / "tpcds" / table / part).read_bytes())
    path = tpcds.write_hive_ddl(mount, member="hdfs", location_root="hdfs://namenode:8020/tmp")
    ddl = (hdfs / path).read_text()
    assert "LOCATION 'hdfs://namenode:8020/tmp/tpcds/store_sales/';" in ddl
    assert ddl.count("CREATE EXTERNAL TABLE") == 3


def test_existing_table_is_refused_unless_overwrite(mount, dirs):
    hdfs, s3 = dirs
    tpcds.write_tpcds(mount, member="hdfs", scale_factor=0.01, tables=["item"], files_per_table=4)
    (s3 / "tpcds" / "item").mkdir(parents=True)
    (s3 / "tpcds" / "item" / "part-00003.parquet").write_bytes(b"a migrated copy")
    with pytest.raises(
        FileExistsError, match=r"hybrid://lake/tpcds/item already exists in member\(s\) s3, hdfs"
    ):
        tpcds.write_tpcds(mount, member="hdfs", scale_factor=0.01, tables=["item"])
    tpcds.write_tpcds(
        mount, member="hdfs", scale_factor=0.01, tables=["item"], files_per_table=2, overwrite=True
    )
    assert sorted(os.listdir(hdfs / "tpcds" / "item")) == ["part-00000.parquet", "part-00001.parquet"]
    assert not (s3 / "tpcds" / "item").exists()  # the stale copy in the other member went too


def test_without_member_writes_through_the_mount_create_member(mount, dirs):
    hdfs, s3 = dirs
    lake = tpcds.write_tpcds(mount, scale_factor=0.01, tables=["item"], files_per_table=2)
    assert sorted(os.listdir(s3 / "tpcds" / "item")) == ["part-00000.parquet", "part-00001.parquet"]
    assert not (hdfs / "tpcds").exists()
    assert lake.tables["item"].location == f"file://{s3}/tpcds/item"


class _NoTimesStore(LocalStore):
    """A store that cannot set modification times (like S3): it declares no features."""

    @property
    def features(self) -> StoreFeatures:
        return StoreFeatures()


def test_mtime_range_on_a_store_without_times_fails_before_writing(mount, dirs):
    _, s3 = dirs
    mount.members["s3"] = _NoTimesStore(str(s3))
    with pytest.raises(ValueError, match=r"member 's3' \(_NoTimesStore\) cannot set modification times"):
        tpcds.write_tpcds(mount, member="s3", scale_factor=0.01, mtime_range=(OLDEST, NEWEST))
    assert list(s3.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"member": "nope"}, r"mount 'lake' has no member 'nope' \(members: hdfs, s3\)"),
        ({"scale_factor": 0}, "scale_factor must be positive"),
        ({"files_per_table": 0}, "files_per_table: store_sales needs at least one file"),
        ({"mtime_range": (NEWEST, OLDEST)}, "mtime_range: newest .* is before oldest"),
        ({"base_path": "../up"}, "escapes its root"),
    ],
)
def test_bad_arguments_name_the_problem(mount, dirs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tpcds.write_tpcds(mount, **kwargs)
    assert all(list(p.iterdir()) == [] for p in dirs)


def test_queries_come_from_the_generator_query_set():
    assert tpcds.tpcds_query_numbers() == list(range(1, 100))
    q3 = tpcds.tpcds_query(3)
    assert "item.i_manufact_id = 128" in q3 and "dt.d_moy=11" in q3
    assert "i_category" in tpcds.tpcds_query(42)
    assert tpcds.tpcds_query("55") == tpcds.tpcds_query(55)
    with pytest.raises(ValueError, match="no TPC-DS query 100; the generator's query set has 1 to 99"):
        tpcds.tpcds_query(100)


def test_extension_version_must_match_duckdb(monkeypatch):
    assert tpcds.tpcds_extension_path().name == "tpcds.duckdb_extension"
    installed = duckdb.__version__
    monkeypatch.setattr(tpcds.duckdb, "__version__", "9.9.9")
    with pytest.raises(tpcds.TpcdsExtensionError) as err:
        tpcds.tpcds_extension_path()
    message = str(err.value)
    assert f"duckdb-extension-tpcds {installed} (extension built for v{installed})" in message
    assert "does not match duckdb 9.9.9" in message
    assert "pip install 'duckdb-extension-tpcds==9.9.9'" in message


def test_missing_extension_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tpcds.TpcdsExtensionError, match="wheel is not installed; run: pip install"):
        tpcds.connect()


def test_parquet_schema_is_read_from_the_footer_only(generated):
    _, hdfs, _ = generated
    store = LocalStore(str(hdfs))
    reads = []
    original = store.open_read

    def counting_open_read(path, offset=0, length=None):
        reads.append((offset, length))
        return original(path, offset, length)

    store.open_read = counting_open_read
    path = "tpcds/store_sales/part-00000.parquet"
    assert read_parquet_schema(store, path) == pq.read_schema(hdfs / path)
    size = (hdfs / path).stat().st_size
    assert len(reads) == 2 and sum(length for _, length in reads) < size / 10
    assert all(offset > 0 and length is not None for offset, length in reads)


def test_not_a_parquet_file_is_refused(mount, dirs):
    hdfs, _ = dirs
    mount.members["hdfs"].write("x.parquet", io.BytesIO(b"definitely not parquet"))
    with pytest.raises(ValueError, match=r"'x.parquet' is not a Parquet file"):
        read_parquet_schema(mount, "x.parquet")
