"""The ``cache`` section of a hybrid_mount connection: parsing, defaults and errors naming the option."""

from __future__ import annotations

import os

import pytest

from airflow_hybrid.cache.config import CacheConfig, default_catalog_url, parse_duration, parse_size
from airflow_hybrid.cache.exceptions import CacheConfigError, UnknownTierError


def _options(*tiers: dict, **cache) -> dict:
    return {"members": {"local": {"uri": "file:///tmp/x"}}, "cache": {"tiers": list(tiers), **cache}}


MEM = {"alias": "MEM", "uri": "file:///dev/shm/hybrid", "quota": "2GB", "high_watermark": 0.95, "low_watermark": 0.7}
SSD = {"alias": "SSD", "uri": "file:///mnt/ssd/hybrid", "quota": "100GiB"}
S3 = {"alias": "S3", "uri": "s3://bucket/cache", "quota": "5TB", "conn_id": "aws_default"}


def test_full_section_is_parsed():
    config = CacheConfig.from_options(
        _options(MEM, SSD, S3, catalog_url="postgresql+psycopg2://u@h/db", cache_on_read=False,
                 metadata_sync_interval="5m", default_ttl="1d"),
        "lake",
    )
    assert config.enabled
    assert config.aliases == ["MEM", "SSD", "S3"]
    mem, ssd, s3 = config.tiers
    assert mem.quota == 2 * 1024**3 and (mem.high_watermark, mem.low_watermark) == (0.95, 0.7)
    assert ssd.quota == 100 * 1024**3 and (ssd.high_watermark, ssd.low_watermark) == (0.95, 0.7)
    assert s3.quota == 5 * 1024**4 and s3.conn_id == "aws_default" and mem.conn_id is None
    assert config.catalog_url == "postgresql+psycopg2://u@h/db"
    assert config.cache_on_read is False
    assert config.metadata_sync_interval == 300
    assert config.default_ttl == 86400
    assert config.tier().alias == "MEM"  # the first tier is the default
    assert config.tier("ssd").alias == "SSD"  # aliases match case-insensitively


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1234, 1234),
        ("1234", 1234),
        ("512B", 512),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("1.5 MB", int(1.5 * 1024**2)),
        ("2g", 2 * 1024**3),
        ("3GIB", 3 * 1024**3),
        ("1TB", 1024**4),
        ("1pb", 1024**5),
    ],
)
def test_sizes_follow_alluxio(text, expected):
    assert parse_size(text, "q") == expected


@pytest.mark.parametrize("bad", ["2XB", "GB", "1.2.3GB", "ten", "", True, [], None])
def test_unparseable_sizes_name_the_option(bad):
    with pytest.raises(CacheConfigError, match=r"^cache\.tiers\[0\]\.quota: "):
        parse_size(bad, "cache.tiers[0].quota", "quota")


def test_negative_quota_names_the_tier_index():
    with pytest.raises(CacheConfigError) as err:
        CacheConfig.from_options(_options(MEM, {**SSD, "quota": -5}), "lake")
    assert str(err.value) == "cache.tiers[1].quota: negative quota -5"


def test_negative_quota_string():
    with pytest.raises(CacheConfigError, match=r"cache\.tiers\[0\]\.quota: negative quota -1GB"):
        CacheConfig.from_options(_options({**MEM, "quota": "-1GB"}), "lake")


def test_zero_quota_is_refused():
    with pytest.raises(CacheConfigError, match=r"cache\.tiers\[0\]\.quota: must be positive"):
        CacheConfig.from_options(_options({**MEM, "quota": "0GB"}), "lake")


@pytest.mark.parametrize(
    ("high", "low"),
    [(0.7, 0.9), (0.8, 0.8), (1.2, 0.5), (0.9, 0.0), (0.9, -0.1)],
)
def test_watermarks_out_of_order(high, low):
    with pytest.raises(CacheConfigError, match=r"^cache\.tiers\[0\]"):
        CacheConfig.from_options(_options({**MEM, "high_watermark": high, "low_watermark": low}), "lake")


def test_watermark_order_message():
    with pytest.raises(CacheConfigError) as err:
        CacheConfig.from_options(_options(MEM, {**SSD, "high_watermark": 0.6, "low_watermark": 0.8}), "lake")
    assert "cache.tiers[1]: watermarks out of order" in str(err.value)
    assert "low_watermark (0.8) < high_watermark (0.6)" in str(err.value)


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        ({"uri": "file:///x", "quota": "1GB"}, r"cache\.tiers\[0\]\.alias: expected a name"),
        ({"alias": "MEM", "quota": "1GB"}, r"cache\.tiers\[0\]\.uri: missing"),
        ({"alias": "MEM", "uri": "file:///x"}, r"cache\.tiers\[0\]\.quota: missing"),
        ({**MEM, "qouta": 1}, r"cache\.tiers\[0\]: unknown keys \['qouta'\]"),
        ("MEM", r"cache\.tiers\[0\]: expected an object"),
        ({**MEM, "high_watermark": "high"}, r"cache\.tiers\[0\]\.high_watermark: expected a number"),
    ],
)
def test_bad_tier_definitions(tier, message):
    with pytest.raises(CacheConfigError, match=message):
        CacheConfig.from_options(_options(tier), "lake")


def test_duplicate_alias():
    with pytest.raises(CacheConfigError, match=r"cache\.tiers\[1\]\.alias: 'mem' already used by cache\.tiers\[0\]"):
        CacheConfig.from_options(_options(MEM, {**SSD, "alias": "mem"}), "lake")


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"tiers": []}, r"cache\.tiers: expected a non-empty list"),
        ({"tiers": [MEM], "metadata_sync_interval": -5}, r"cache\.metadata_sync_interval: negative duration"),
        ({"tiers": [MEM], "metadata_sync_interval": "soon"}, r"cache\.metadata_sync_interval: cannot parse"),
        ({"tiers": [MEM], "listing_sync_interval": -5}, r"cache\.listing_sync_interval: negative duration"),
        ({"tiers": [MEM], "join_running_load_up_to": "-1GB"}, r"cache\.join_running_load_up_to: negative size"),
        ({"tiers": [MEM], "scan_read_ahead": -1}, r"cache\.scan_read_ahead: -1 is below the minimum 0"),
        ({"tiers": [MEM], "scan_read_ahead": "lots"}, r"cache\.scan_read_ahead: expected a whole number"),
        ({"tiers": [MEM], "default_ttl": 0}, r"cache\.default_ttl: must be positive"),
        ({"tiers": [MEM], "cache_on_read": "maybe"}, r"cache\.cache_on_read: expected true or false"),
        ({"tiers": [MEM], "default_tier": "NVME"}, r"cache\.default_tier: unknown cache tier 'NVME'"),
        ({"tiers": [MEM], "tier": "MEM"}, r"cache: unknown keys \['tier'\]"),
        ("{not json", r"cache: not valid JSON"),
    ],
)
def test_bad_cache_options(cache, message):
    with pytest.raises(CacheConfigError, match=message):
        CacheConfig.from_options({"cache": cache}, "lake")


def test_metadata_sync_interval_values():
    def interval(value):
        return CacheConfig.from_options({"cache": {"tiers": [MEM], "metadata_sync_interval": value}}, "m").metadata_sync_interval

    assert interval(0) == 0
    assert interval(-1) == -1
    assert interval("-1") == -1
    assert interval("30s") == 30
    assert interval("2min") == 120
    assert CacheConfig.from_options({"cache": {"tiers": [MEM]}}, "m").metadata_sync_interval == 60
    assert parse_duration("250ms", "x") == 0.25


def test_listing_sync_interval_values():
    def interval(value):
        return CacheConfig.from_options({"cache": {"tiers": [MEM], "listing_sync_interval": value}}, "m").listing_sync_interval

    assert CacheConfig.from_options({"cache": {"tiers": [MEM]}}, "m").listing_sync_interval == 0  # off by default
    assert interval("1m") == 60
    assert interval(-1) == -1


def test_unknown_tier_lists_the_configured_ones():
    config = CacheConfig.from_options(_options(MEM, SSD), "lake")
    with pytest.raises(UnknownTierError) as err:
        config.tier("NVME")
    assert str(err.value) == "unknown cache tier 'NVME' for mount 'lake'; configured tiers: MEM, SSD"


def test_no_cache_section_means_disabled():
    config = CacheConfig.from_options({"members": {}}, "lake")
    assert not config.enabled
    with pytest.raises(UnknownTierError, match="has no cache tiers"):
        config.tier("MEM")


def test_cache_section_as_json_string_and_top_level_catalog_url():
    import json

    config = CacheConfig.from_options({"cache": json.dumps({"tiers": [MEM]}), "catalog_url": "sqlite:////x.db"}, "m")
    assert config.aliases == ["MEM"]
    assert config.resolved_catalog_url == "sqlite:////x.db"


def test_default_catalog_is_sqlite_under_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_catalog_url() == f"sqlite:///{tmp_path}/hybrid/catalog.db"
    config = CacheConfig.from_options(_options(MEM), "lake")
    assert config.catalog_url is None
    assert config.resolved_catalog_url == f"sqlite:///{tmp_path}/hybrid/catalog.db"
    monkeypatch.delenv("AIRFLOW_HOME")
    assert default_catalog_url() == f"sqlite:///{os.path.expanduser('~')}/airflow/hybrid/catalog.db"


def test_join_running_load_up_to_values():
    def limit(value):
        return CacheConfig.from_options({"cache": {"tiers": [MEM], "join_running_load_up_to": value}}, "m").join_running_load_up_to

    assert CacheConfig.from_options({"cache": {"tiers": [MEM]}}, "m").join_running_load_up_to == 0
    assert limit("1GB") == 1024**3
    assert limit(0) == 0


def test_scan_read_ahead_values():
    def files(value):
        return CacheConfig.from_options({"cache": {"tiers": [MEM], "scan_read_ahead": value}}, "m").scan_read_ahead

    assert CacheConfig.from_options({"cache": {"tiers": [MEM]}}, "m").scan_read_ahead == 4
    assert (files(0), files("8"), files(2.0)) == (0, 8, 2)
