"""Fuzzing every input a user writes: mount options, option lines, cache config, sizes, durations, booleans,
store options, policies and the policies file.

The property is the same everywhere: a valid result, or a :class:`HybridConfigError` (or a subclass) whose message
names the option or the position; never another exception. Inputs are bounded in size (leaves, lengths) rather
than by switching the deadline off, so a slow parse still fails. Globs are tested with ``cache_ops``.
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_hybrid.cache.config import CacheConfig
from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.migration.registry import parse_policies
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.options import MountConfigError, parse_option_lines
from airflow_hybrid.policy.model import PolicyParseError
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.s3.options import S3Options
from airflow_hybrid.values import MAX_DURATION, MAX_SIZE, parse_bool, parse_duration, parse_size

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),  # generous for a shared 2-core machine; inputs are small, so parses are fast
    suppress_health_check=[HealthCheck.too_slow],
)
ROOT = tempfile.mkdtemp(prefix="hybrid-fuzz-")  # local members' directories (never created: stores are lazy)

# -- building blocks ---------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["", "0", "1", "-1", "true", "off", "5MiB", "1e400MiB", "9" * 300, "1.5h", "-5s", "nan"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
quantity_texts = st.text(alphabet="0123456789.+-eE kKmMgGtTpPiIbBsShHdDnN", max_size=24)
member_names = st.sampled_from(["hdfs", "s3", "local", "a", "a,b", " s3", ""]) | st.text(max_size=6)
uris = st.one_of(
    st.sampled_from(["hdfs:///tmp/t", "hdfs://nn:8020/t", "webhdfs://nn/t", "s3://bucket/t", "s3a://b", "s3:///t",
                     "s3://[x/p", "hdfs://nn:port/t", "gs://b/t", "file:", "", "file:///\x00"]),
    st.builds(lambda path: f"file://{ROOT}/{path}", st.text(max_size=12)),
    st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["s3", "hdfs", "file"]), st.text(max_size=16)),
    json_values,
)
store_option_keys = st.sampled_from([
    "max_attempts", "retry_backoff", "retry_backoff_max", "timeout", "chunk_size", "verify_checksum", "replication",
    "blocksize", "permission", "proxy_user", "part_size", "upload_concurrency", "max_buffered_parts", "checksum_type",
    "max_pool_connections", "connect_timeout", "read_timeout", "page_size", "conditional_writes", "part-size",
    "alluxio.underfs.version", "bogus",
])
store_option_values = st.one_of(json_values, quantity_texts, st.lists(quantity_texts, max_size=3))
store_options = st.one_of(st.dictionaries(store_option_keys, store_option_values, max_size=4), json_values)
random_members = st.dictionaries(
    member_names,
    st.one_of(
        st.fixed_dictionaries({"uri": uris}, optional={"conn_id": st.one_of(st.text(max_size=8), json_values),
                                                       "options": store_options, "extra": scalars}),
        json_values,
    ),
    max_size=3,
)
option_line_texts = st.text(alphabet=string.ascii_lowercase[:6] + "=.-_ '\"\\#\n\t/:", max_size=60)
alluxio_keys = st.builds(
    lambda member, attr: f"alluxio-union.{member}{attr}",
    member_names, st.sampled_from([".uri", ".conn_id", ".option.conn_id", ".option.part_size", ".option.", ".url", ""]),
)
random_extras = st.one_of(
    st.fixed_dictionaries({}, optional={
        "members": st.one_of(random_members, json_values),
        "priority.read": st.one_of(st.sampled_from(["s3,hdfs", "hdfs", "a,,b", ""]), json_values),
        "collection.create": st.one_of(st.sampled_from(["s3", "hdfs,s3"]), json_values),
        "mount_options": st.one_of(option_line_texts, st.lists(option_line_texts, max_size=2), json_values),
        "cache": json_values,
    }),
    st.dictionaries(st.one_of(alluxio_keys, st.text(max_size=10)), st.one_of(uris, store_option_values), max_size=4),
    json_values,
)
valid_uris = st.sampled_from(["hdfs:///tmp/t", "hdfs://nn:8020/t", "webhdfs://nn/t", "s3://bucket/t", "s3a://b/x",
                              f"file://{ROOT}/a", f"{ROOT}/b"])
plausible_option_values = st.one_of(
    st.sampled_from(["5", "16MiB", "8m", "true", "off", "0.5", "2s", "250ms", "644", "composite", None, 3, 0, -1]),
    quantity_texts,
)
corruptions = st.one_of(json_values, quantity_texts, uris, option_line_texts)


@st.composite
def mount_extras(draw) -> object:
    """Mostly a valid mount with up to three values corrupted; sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(random_extras)
    names = draw(st.lists(st.sampled_from(["hdfs", "s3", "local", "a"]), min_size=1, max_size=3, unique=True))
    members = {}
    for name in names:
        spec = {"uri": draw(valid_uris)}
        if draw(st.booleans()):
            spec["options"] = draw(st.dictionaries(store_option_keys, plausible_option_values, max_size=3))
        members[name] = spec
    extras: dict = {"members": members}
    if draw(st.booleans()):
        extras["priority.read"] = ",".join(draw(st.permutations(names)))
    if draw(st.booleans()):
        extras["collection.create"] = names[0]
    if draw(st.booleans()):  # the same members again as Alluxio option lines
        extras["mount_options"] = "\n".join(
            f"alluxio-union.{name}.option.{draw(store_option_keys)}={draw(st.sampled_from(['5', '8MiB', 'x']))}"
            for name in names
        )
    for _ in range(draw(st.integers(0, 3))):
        member = members[draw(st.sampled_from(names))]
        where = draw(st.sampled_from(["uri", "options", "conn_id", "option", "key", "top"]))
        value = draw(corruptions)
        if where == "option":
            options = member["options"] = member.get("options") if isinstance(member.get("options"), dict) else {}
            options[draw(store_option_keys)] = value
        elif where == "key":
            member[draw(st.text(max_size=6))] = value
        elif where == "top":
            extras[draw(st.sampled_from(["priority.read", "collection.create", "mount_options", "members",
                                         "alluxio-union.s3.uri", "alluxio-union.hdfs.option.part_size"]))] = value
        else:
            member[where] = value
    return extras


def _our_error(err: HybridConfigError, *names: str) -> None:
    """The error is ours and its message is one that names something (an option, a position)."""
    message = str(err)
    assert isinstance(err, HybridConfigError) and message.strip(), repr(err)
    if names:
        assert any(name in message for name in names), message


# -- mount options ----------------------------------------------------------------------------------
@FUZZ
@given(mount_extras())
@example({"members": {"a": {"uri": -450}}})
@example({"members": {"a": {"uri": "s3://[x/p"}}})
@example({"members": {"a": {"uri": "s3://b/p", "options": [False]}}})
@example({"members": {"a": {"uri": "hdfs:///p", "options": {"max_attempts": None}}}})
@example({"members": {"a": {"uri": "s3://b/p", "options": {"part_size": "1e400MiB"}}}})
@example({"mount_options": "'"})
@example({"mount_options": "\\"})
def test_mount_options_build_a_mount_or_fail_with_our_error(extras):
    try:
        mount = HybridMount.from_options("fuzz", extras)
    except HybridConfigError as err:
        _our_error(err)
        return
    assert set(mount.read_order) == set(mount.members) and mount.create_members


@FUZZ
@given(option_line_texts)
@example("'")
@example("\\")
@example("a=1\n--option 'b=2")
def test_option_lines_parse_or_name_the_line(text):
    try:
        result = parse_option_lines(text)
    except MountConfigError as err:
        _our_error(err, "mount_options: ")
        assert re.search(r"\(line \d+", str(err)), str(err)
        return
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in result.items())


@FUZZ
@given(st.dictionaries(store_option_keys, store_option_values, max_size=5))
def test_store_options_are_read_or_refused_naming_the_option(options):
    for build in (lambda: HdfsStore("hdfs:///fuzz", options=options), lambda: S3Options.from_mapping(options)):
        try:
            build()
        except HybridConfigError as err:
            _our_error(err, *options)


# -- cache config -----------------------------------------------------------------------------------
random_tiers = st.fixed_dictionaries(
    {},
    optional={
        "alias": st.one_of(st.sampled_from(["MEM", "SSD", "mem"]), json_values),
        "uri": uris,
        "quota": st.one_of(quantity_texts, json_values),
        "high_watermark": st.one_of(st.floats(), quantity_texts, json_values),
        "low_watermark": st.one_of(st.floats(), quantity_texts, json_values),
        "conn_id": json_values,
        "options": json_values,
    },
)
TIER_KEYS = ["alias", "uri", "quota", "high_watermark", "low_watermark", "conn_id", "options", "qouta"]
CACHE_KEYS = ["tiers", "catalog_url", "cache_on_read", "metadata_sync_interval", "listing_sync_interval",
              "default_ttl", "default_tier", "load_lease", "join_running_load_up_to", "file_mode", "tier"]


@st.composite
def cache_sections(draw) -> object:
    """Mostly a valid ``cache`` section with up to three values corrupted; sometimes anything, or broken JSON."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(json_values | st.fixed_dictionaries({}, optional={"tiers": st.lists(random_tiers, max_size=2)}))
    if choice == 1:
        return draw(st.text(alphabet='{}[]":,0123456789tiers ', max_size=30))  # the section as (broken) JSON
    aliases = draw(st.lists(st.sampled_from(["MEM", "SSD", "S3", "NVME"]), min_size=1, max_size=3, unique=True))
    tiers = [{"alias": alias, "uri": draw(valid_uris), "quota": draw(st.sampled_from(["2GB", "512MiB", 1024, "1.5t"]))}
             for alias in aliases]
    cache: dict = {"tiers": tiers}
    for key, values in [("cache_on_read", ["yes", False, "off"]), ("default_ttl", ["1h", 60, None, "2d"]),
                        ("metadata_sync_interval", [-1, "30s", 0]), ("default_tier", aliases),
                        ("join_running_load_up_to", ["64MB", 0]), ("file_mode", ["0600", "640", 0o600])]:
        if draw(st.booleans()):
            cache[key] = draw(st.sampled_from(values))
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            draw(st.sampled_from(tiers))[draw(st.sampled_from(TIER_KEYS))] = draw(corruptions)
        else:
            cache[draw(st.sampled_from(CACHE_KEYS))] = draw(corruptions)
    return cache


@FUZZ
@given(cache_sections(), st.one_of(st.none(), st.none(), json_values))
@example({"tiers": [{"alias": "M", "uri": "/x", "quota": "1GB"}], "default_ttl": "9" * 400}, None)
@example({"tiers": [{"alias": "M", "uri": "/x", "quota": "1GB"}], "default_ttl": 10**400}, None)
@example({"tiers": [{"alias": "M", "uri": "/x", "quota": "1GB"}], "file_mode": 10**5000}, None)
def test_cache_config_parses_or_names_the_option(cache, catalog_url):
    try:
        config = CacheConfig.from_options({"cache": cache, "catalog_url": catalog_url}, "fuzz")
    except HybridConfigError as err:
        _our_error(err, "cache", "catalog_url")
        return
    for tier in config.tiers:
        assert 0 < tier.quota <= MAX_SIZE and 0 < tier.low_watermark < tier.high_watermark <= 1
    assert config.default_ttl is None or 0 < config.default_ttl <= MAX_DURATION


# -- sizes, durations, booleans ---------------------------------------------------------------------
quantities = st.one_of(quantity_texts, st.integers(), st.floats(), json_values,
                       st.text(alphabet="9", min_size=60, max_size=400).map(lambda d: d + "PB"))


@FUZZ
@given(quantities)
@example("9" * 300 + "PB")
@example("1e400MiB")
@example(10**400)
def test_sizes_are_bytes_or_name_the_option(value):
    try:
        size = parse_size(value, "fuzz.size")
    except HybridConfigError as err:
        _our_error(err)
        assert str(err).startswith("fuzz.size: ")
        return
    assert isinstance(size, int) and 0 <= size <= MAX_SIZE


@FUZZ
@given(quantities, st.booleans())
@example("9" * 400, False)
@example(10**400, True)
def test_durations_are_seconds_or_name_the_option(value, allow_never):
    try:
        seconds = parse_duration(value, "fuzz.ttl", allow_never=allow_never)
    except HybridConfigError as err:
        _our_error(err)
        assert str(err).startswith("fuzz.ttl: ")
        return
    assert isinstance(seconds, float) and (0 <= seconds <= MAX_DURATION or (allow_never and seconds == -1))


@FUZZ
@given(st.one_of(st.text(alphabet="trufalsyeonf01 TRUEFALSE", max_size=8), json_values))
def test_booleans_are_booleans_or_name_the_option(value):
    try:
        result = parse_bool(value, "fuzz.flag")
    except HybridConfigError as err:
        assert str(err).startswith("fuzz.flag: expected true or false")
        return
    assert result is (value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "on", "1"))


# -- policies -------------------------------------------------------------------------------------
VALID_POLICIES = [
    "ufsMigrate(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    "cold:ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    "ufsMigrate(and(unusedFor(2h), largerThan(128MB), not(smallerThan(1.5GiB))), UFS[s3]:REMOVE, UFS[hdfs]:STORE)",
    "ufsMigrate(or(olderThan(1d), largerThan(1TB)), UFS[hdfs]:REMOVE, UFS[s3]:STORE, UFS[local]:STORE)",
]
policy_tokens = st.sampled_from([
    "ufsMigrate", "olderThan", "unusedFor", "largerThan", "smallerThan", "and", "or", "not", "UFS", "STORE",
    "REMOVE", "hdfs", "s3", "(", ")", "[", "]", ",", ":", " ", "1m", "30d", "128MB", "1.5GiB", "9" * 30 + "d",
    "36501d", "8192PB", "1..2GB", "0s", "x", "é", "\t",
])
policy_texts = st.one_of(
    st.lists(policy_tokens, max_size=40).map("".join),
    st.text(max_size=60),
)


@st.composite
def mutated_policies(draw) -> str:
    """A valid policy with a few characters inserted, deleted or replaced, or its tokens repeated."""
    text = draw(st.sampled_from(VALID_POLICIES))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        piece = draw(st.one_of(policy_tokens, st.text(max_size=2)))
        if kind == "insert":
            text = text[:position] + piece + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 5)):]
        elif kind == "replace":
            text = text[:position] + piece + text[position + 1:]
        else:
            end = min(len(text), position + draw(st.integers(1, 20)))
            text = text[:end] + text[position:end] * draw(st.integers(1, 4)) + text[end:]
    return text


def _check_policy(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyParseError as err:
        assert 1 <= err.column <= len(text) + 1, (err.column, text)
        assert f" at column {err.column}" in str(err).splitlines()[0]
        return
    assert parse_policy(policy.to_text()) == policy  # canonical text reads back to the same policy
    assert policy.store_members and policy.remove_members
    assert not set(policy.store_members) & set(policy.remove_members)


@FUZZ
@given(policy_texts)
def test_random_policy_texts_parse_or_name_the_column(text):
    _check_policy(text)


@FUZZ
@given(mutated_policies())
def test_mutated_policies_parse_or_name_the_column(text):
    _check_policy(text)


ENTRY_KEYS = ["mount", "path", "policy", "schedule", "name", "min_files", "min_bytes", "engine", "executor", "emr",
              "distcp", "concurrency", "deferrable", "poke_interval", "timeout", "batch_max_bytes", "tags", "bogus"]


@st.composite
def policies_documents(draw) -> object:
    """Valid entries with up to two values each corrupted (or dropped), sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    entries = []
    for index in range(draw(st.integers(0, 3))):
        entry = {"mount": "lake", "path": f"/t{index}", "policy": draw(st.sampled_from(VALID_POLICIES)),
                 "schedule": draw(st.sampled_from(["@daily", None])),
                 "deferrable": draw(st.sampled_from([True, "off", "yes"])), "poke_interval": draw(
                     st.sampled_from([60, "5m", 0.5])), "min_bytes": draw(st.sampled_from([0, "1GB", "1.5 MiB"]))}
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(ENTRY_KEYS))
            if draw(st.integers(0, 5)) == 0:
                entry.pop(key, None)
            else:
                entry[key] = draw(st.one_of(corruptions, mutated_policies()))
        entries.append(entry)
    return {"policies": entries} if draw(st.booleans()) else entries


@FUZZ
@given(policies_documents())
def test_the_policies_file_loads_or_reports_each_bad_entry(document):
    text = json.dumps(document)  # JSON is YAML (and quick to write)
    entries, errors = parse_policies(text, source="fuzz.yaml")
    assert all(error.startswith("fuzz.yaml: ") for error in errors)
    listed = document.get("policies") if isinstance(document, dict) else document
    if isinstance(listed, list):
        assert len(entries) + len(errors) == len(listed)
