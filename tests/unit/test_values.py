"""One grammar for sizes, durations and booleans, and each bad input of issue 11 as the project's own error."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from airflow_hybrid.cache.config import CacheConfig
from airflow_hybrid.cache.exceptions import CacheConfigError
from airflow_hybrid.cache.tier import copy_location
from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.migration.registry import parse_policies
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.options import MountConfigError, parse_mount_options, parse_option_lines
from airflow_hybrid.policy.model import PolicyParseError
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.s3.options import S3Options
from airflow_hybrid.stores.s3.options import parse_size as s3_parse_size
from airflow_hybrid.values import (
    MAX_DURATION,
    MAX_SIZE,
    cut_utf8,
    parse_bool,
    parse_duration,
    parse_int,
    parse_size,
)

KiB, MiB, GiB, TiB, PiB = (1024**p for p in range(1, 6))


# -- the grammar ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0), (5, 5), (7.0, 7), ("1234", 1234), ("512B", 512), ("1k", KiB), ("1KB", KiB), ("1KiB", KiB),
        ("1.5 MB", int(1.5 * MiB)), ("2g", 2 * GiB), ("3GIB", 3 * GiB), ("1tb", TiB), ("1PB", PiB), ("1pib", PiB),
        (" 8 MiB ", 8 * MiB), (".5k", 512), ("1.", 1), ("+2K", 2 * KiB), ("8191PB", 8191 * PiB),
    ],
)
def test_sizes_are_alluxios_powers_of_1024(value, expected):
    assert parse_size(value, "opt") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 300 + "PB", "is too long (at most 64 characters)"),
        ("1e400MiB", "cannot parse size '1e400MiB'"),
        ("8192PB", "is too large (at most 8 EiB)"),
        (10**400, "size <a 1329-bit integer> is too large"),
        (float("nan"), "size nan is not finite"),
        (float("inf"), "size inf is not finite"),
        (-1, "negative size -1"),
        ("-1GB", "negative size -1GB"),
        ("2XB", "unknown unit 'xb'"),
        ("GB", "cannot parse size 'GB'"),
        ("1.2.3GB", "cannot parse size"),
        ("", "cannot parse size ''"),
        (True, "expected a size such as 2GB, got True"),
        (None, "expected a size such as 2GB, got None"),
        ([1], "expected a size such as 2GB, got [1]"),
    ],
)
def test_bad_sizes_name_the_option_and_the_value(value, message):
    with pytest.raises(HybridConfigError) as err:
        parse_size(value, "opt")
    assert str(err.value).startswith("opt: ") and message in str(err.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(60, 60.0), ("60", 60.0), (1.5, 1.5), ("250ms", 0.25), ("30s", 30.0), ("2sec", 2.0), ("1m", 60.0),
     ("1M", 60.0), ("2min", 120.0), ("1.5h", 5400.0), ("1hr", 3600.0), ("2d", 172_800.0), ("1day", 86_400.0),
     ("36500d", float(MAX_DURATION))],
)
def test_durations_are_alluxios_units_and_a_bare_number_is_seconds(value, seconds):
    assert parse_duration(value, "opt") == seconds


def test_minus_one_is_never_only_where_allowed():
    assert parse_duration(-1, "opt", allow_never=True) == parse_duration("-1", "opt", allow_never=True) == -1.0
    with pytest.raises(HybridConfigError, match=r"^opt: negative duration -1$"):
        parse_duration(-1, "opt")
    with pytest.raises(HybridConfigError, match=r"-1 means never"):
        parse_duration(-2, "opt", allow_never=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**400, "is too long (at most 36500d)"),
        ("9" * 400, "is too long (at most 64 characters)"),
        ("36501d", "is too long (at most 36500d)"),
        (1e300, "is too long"),
        (float("nan"), "is not finite"),
        ("5y", "unknown unit 'y'"),
        ("1e3", "cannot parse duration"),
        ("soon", "cannot parse duration 'soon'"),
        (False, "expected a duration"),
        ({}, "expected a duration"),
    ],
)
def test_bad_durations_name_the_option_and_the_value(value, message):
    with pytest.raises(HybridConfigError) as err:
        parse_duration(value, "opt")
    assert str(err.value).startswith("opt: ") and message in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), ("YES", True),
     ("no", False), (" on ", True), ("OFF", False), ("1", True), ("0", False)],
)
def test_booleans(value, expected):
    assert parse_bool(value, "opt") is expected


@pytest.mark.parametrize("value", ["maybe", "", "t", 2, -1, 1.0, None, [], "true" * 100])
def test_anything_else_is_no_boolean(value):
    with pytest.raises(HybridConfigError, match=r"^opt: expected true or false, got "):
        parse_bool(value, "opt")


def test_whole_numbers_are_bounded():
    assert parse_int("12", "opt", minimum=1) == 12 and parse_int(3.0, "opt") == 3
    for value, message in [(0, "below the minimum 1"), (10**30, "above the maximum"), ("1.5", "whole number"),
                           (None, "whole number"), (True, "whole number"), (2.5, "whole number")]:
        with pytest.raises(HybridConfigError, match=rf"^opt: .*{message}"):
            parse_int(value, "opt", minimum=1)


def test_a_name_is_cut_on_utf8_bytes_at_a_character_boundary():
    assert cut_utf8("abc", 255) == "abc"
    cut = cut_utf8("é" * 200, 255)
    assert len(cut.encode()) == 254 and cut == "é" * 127  # 255 would split the 128th character
    end = cut_utf8("😀" * 100 + ".parquet", 20, keep="end")
    assert end == "😀" * 3 + ".parquet" and len(end.encode()) <= 20


def test_a_cached_copy_name_fits_the_255_byte_name_limit():
    """It was cut at 180 characters: 180 four-byte characters are 720 bytes."""
    location = copy_location("lake", "t/" + "😀" * 300 + ".parquet", "load-1")
    name = location.rsplit("/", 1)[1]
    assert len(name.encode()) <= 255 and name.endswith("😀.parquet")
    assert all(len(part.encode()) <= 255 for part in location.split("/"))


# -- each case of issue 11, item 5 -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extras", "error", "message"),
    [
        ({"members": {"a": {"uri": -450}}}, MountConfigError,
         "members.a.uri: expected a URI such as s3://bucket/prefix, got -450"),
        ({"members": {"a": {"uri": "s3://[x/p"}}}, MountConfigError,
         "members.a.uri: not a valid URI (Invalid IPv6 URL): 's3://[x/p'"),
        ({"members": {"a": {"uri": "s3://b/p", "options": [False]}}}, MountConfigError,
         "members.a.options: expected an object of store options, got [False]"),
        ({"members": {"a": {"uri": "s3://b/p", "options": {"max_attempts": "many"}}}}, HybridConfigError,
         "S3 store option max_attempts='many' is invalid: expected a whole number, got 'many'"),
        ({"members": {"a": {"uri": "hdfs:///p", "options": {"max_attempts": []}}}}, HybridConfigError,
         "HDFS option max_attempts: expected a whole number, got []"),
        ({"members": {"a": {"uri": "s3://b/p", "options": {"part_size": "1e400MiB"}}}}, HybridConfigError,
         "S3 store option part_size='1e400MiB' is invalid: cannot parse size '1e400MiB'"),
        ({"members": {"a": {"uri": "hdfs:///p", "options": {"blocksize": "9" * 300 + "PB"}}}}, HybridConfigError,
         "HDFS option blocksize: size '999"),
        ({"members": {"a": {"uri": "hdfs:///p", "options": {"retry_backoff": 10**400}}}}, HybridConfigError,
         "HDFS option retry_backoff: duration <a 1329-bit integer> is too long"),
        ({"mount_options": "'"}, MountConfigError, "mount_options: no closing quotation (line 1: \"'\")"),
        ({"mount_options": "a=1\n\\"}, MountConfigError, "mount_options: no escaped character (line 2: '\\\\')"),
        ({"mount_options": ["alluxio-union.a.uri=/x", 5]}, MountConfigError,
         "mount_options: expected key=value lines (a text), got ['alluxio-union.a.uri=/x', 5]"),
        ({"members": {"a,b": {"uri": "/x"}}}, MountConfigError, "members: 'a,b' is not a member name"),
        ({"members": {"a": {"uri": "s3:///p"}}}, MountConfigError, "names no bucket"),
        ({"members": {"a": {"uri": "hdfs://nn:port/p"}}}, MountConfigError, "members.a.uri: not a valid URI"),
    ],
)
def test_bad_mount_options_are_our_errors_naming_the_option(extras, error, message):
    with pytest.raises(error) as err:
        HybridMount.from_options("m", extras)
    assert message in str(err.value)


def test_null_store_options_mean_the_default():
    mount = HybridMount.from_options("m", {"members": {
        "h": {"uri": "hdfs:///p", "options": {"max_attempts": None}},
        "s": {"uri": "s3://b/p", "options": {"max_attempts": None, "part_size": "16MiB"}},
    }})
    assert mount.members["h"].max_attempts == 5
    assert (mount.members["s"].options.max_attempts, mount.members["s"].options.part_size) == (5, 16 * MiB)


def test_store_options_take_the_shared_grammar():
    store = HdfsStore("hdfs:///p", options={"retry_backoff": "250ms", "timeout": ["2s", "1m"], "chunk_size": "1MiB",
                                            "verify_checksum": "yes", "blocksize": "128MB", "max_attempts": "3"})
    assert (store.retry_backoff, store.timeout, store.chunk_size) == (0.25, (2.0, 60.0), MiB)
    assert store.verify_checksum is True and store.max_attempts == 3 and store.options["blocksize"] == 128 * MiB
    s3 = S3Options.from_mapping({"part_size": "16m", "read_timeout": "2m", "conditional_writes": "off"})
    assert (s3.part_size, s3.read_timeout, s3.conditional_writes) == (16 * MiB, 120.0, False)
    assert s3_parse_size("8MiB", "part_size") == 8 * MiB


def test_option_lines_keep_their_shell_syntax():
    text = "--option alluxio-union.a.uri='/x y' # comment\n-o alluxio-union.a.option.part_size=8MiB\n\n"
    assert parse_option_lines(text) == {"alluxio-union.a.uri": "/x y", "alluxio-union.a.option.part_size": "8MiB"}
    assert parse_mount_options("m", {"mount_options": text}).members["a"].uri == "/x y"


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"default_ttl": "9" * 400}, "cache.default_ttl: duration '999"),
        ({"default_ttl": 10**400}, "cache.default_ttl: duration <a 1329-bit integer> is too long"),
        ({"load_lease": 1e308}, "cache.load_lease: duration 1e+308 is too long"),
        ({"join_running_load_up_to": "9" * 300 + "PB"}, "cache.join_running_load_up_to: size '999"),
        ({"cache_on_read": "sometimes"}, "cache.cache_on_read: expected true or false, got 'sometimes'"),
        ({"default_tier": 10**5000}, "cache.default_tier: expected a tier alias, got <a 16610-bit integer>"),
        ({"tiers": [{"alias": "M", "uri": "s3://[x", "quota": "1GB"}]}, "cache.tiers[0].uri: not a valid URI"),
        ({"tiers": [{"alias": "M", "uri": "/x", "quota": "1e400MiB"}]}, "cache.tiers[0].quota: cannot parse quota"),
    ],
)
def test_bad_cache_values_are_cache_config_errors(cache, message):
    raw = {"tiers": [{"alias": "MEM", "uri": "/tmp/tier", "quota": "1GB"}], **cache}
    with pytest.raises(CacheConfigError) as err:
        CacheConfig.from_options({"cache": raw}, "m")
    assert message in str(err.value)


def test_cache_durations_and_booleans_share_the_grammar():
    config = CacheConfig.from_options({"cache": {
        "tiers": [{"alias": "MEM", "uri": "/tmp/tier", "quota": "1.5GB"}], "cache_on_read": "off",
        "default_ttl": "2d", "metadata_sync_interval": "-1", "join_running_load_up_to": "64m",
    }}, "m")
    assert config.tiers[0].quota == int(1.5 * GiB) and config.cache_on_read is False
    assert (config.default_ttl, config.metadata_sync_interval, config.join_running_load_up_to) == (172_800, -1, 64 * MiB)


def test_policies_file_values_share_the_grammar():
    policy = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
    entries, errors = parse_policies(json.dumps([{
        "mount": "lake", "path": "/t", "policy": policy, "schedule": None, "deferrable": "off",
        "poke_interval": "5m", "timeout": "1h", "min_bytes": "1.5GB",
    }]))
    assert errors == []
    assert (entries[0].deferrable, entries[0].poke_interval, entries[0].timeout) == (False, 300.0, 3600.0)
    assert entries[0].min_bytes == int(1.5 * GiB)
    _, errors = parse_policies(json.dumps([{"mount": "l", "path": "/", "policy": policy, "schedule": None,
                                            "name": 12345, "timeout": "forever"}]))
    assert errors == ["<policies>: entry 0: name: expected a text, got 12345"]
    _, errors = parse_policies(json.dumps([{"mount": "l", "path": "/", "policy": policy, "schedule": None,
                                            "timeout": "forever"}]))
    assert errors == ["<policies>: entry 0: timeout: cannot parse duration 'forever'"]
    _, errors = parse_policies(f"- {{min_files: {'9' * 5000}}}")  # YAML's int() refuses 5,000 digits
    assert errors[0].startswith("<policies>: not valid YAML: ValueError: Exceeds the limit (4300 digits)")


def test_policy_quantities_are_bounded():
    with pytest.raises(PolicyParseError, match="duration '36501d' is longer than 36500d at column 22"):
        parse_policy("ufsMigrate(olderThan(36501d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)")
    with pytest.raises(PolicyParseError, match="size '8192PB' is larger than 8 EiB at column 23"):
        parse_policy("ufsMigrate(largerThan(8192PB), UFS[hdfs]:REMOVE, UFS[s3]:STORE)")
    assert parse_policy("ufsMigrate(largerThan(8191PB), UFS[hdfs]:REMOVE, UFS[s3]:STORE)").condition.size.bytes == (
        8191 * PiB
    ) < MAX_SIZE


# -- a linear policy parse --------------------------------------------------------------------------
def _policy(actions: int) -> str:
    return "ufsMigrate(1m, UFS[hdfs]:REMOVE, " + ", ".join(f"UFS[s{i}]:STORE" for i in range(actions)) + ")"


def _calls(text: str) -> int:
    """Python and C function calls made while parsing ``text`` (a count, not a time)."""
    calls: Counter[str] = Counter()

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            calls[event] += 1

    sys.setprofile(profile)
    try:
        parse_policy(text)
    finally:
        sys.setprofile(None)
    return calls.total()


def test_the_policy_parse_is_linear_in_its_actions():
    """8,000 actions took 9 s (each action was compared with every earlier one): N^2 / 2 comparisons.

    Doubling the actions doubles the calls the parse makes (a quadratic parse would make about 4 times as many).
    """
    small, large = _calls(_policy(1000)), _calls(_policy(2000))
    assert 1.8 < large / small < 2.2, (small, large)
    assert len(parse_policy(_policy(8000)).actions) == 8001
