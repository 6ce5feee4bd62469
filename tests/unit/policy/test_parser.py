"""The policy language: parsing, errors, canonical printing, evaluation, member checks."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_hybrid.policy import (
    Action,
    And,
    Duration,
    LargerThan,
    Not,
    OlderThan,
    Operation,
    Or,
    Policy,
    PolicyParseError,
    PolicyValidationError,
    Size,
    SmallerThan,
    UnusedFor,
    parse_duration,
    parse_policy,
    parse_size,
    validate_members,
)
from airflow_hybrid.stores.base import FileInfo

HDFS_TO_S3 = (Action("hdfs", Operation.REMOVE), Action("s3", Operation.STORE))

# -- valid policies ---------------------------------------------------------------------------------

VALID = [
    # Alluxio's short form: a bare duration means olderThan
    (
        "ufsMigrate(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "archive_sales:ufsMigrate(olderThan(2d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "archive_sales:ufsMigrate(olderThan(2d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    # whitespace anywhere between tokens, including none and newlines
    (
        "  ufsMigrate (\n olderThan ( 30m ) ,UFS [ hdfs ] : REMOVE,UFS[s3]:STORE )  ",
        "ufsMigrate(olderThan(30m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    # keywords and units are case-insensitive and print as Alluxio writes them; 1M is a minute
    (
        "UFSMIGRATE(OLDERTHAN(1M), ufs[hdfs]:remove, Ufs[s3]:Store)",
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    # durations print in the largest exact unit; Alluxio's long unit spellings are accepted
    (
        "ufsMigrate(unusedFor(120sec), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(unusedFor(2m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "ufsMigrate(olderThan(90second), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(olderThan(90s), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "ufsMigrate(olderThan(48hr), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(olderThan(2d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "ufsMigrate(olderThan(1500ms), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(olderThan(1500ms), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    # sizes: KB/MB/... are powers of 1024 (as in Alluxio) and print in IEC form
    (
        "ufsMigrate(and(olderThan(1d), largerThan(128MB)), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(and(olderThan(1d), largerThan(128MiB)), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    (
        "ufsMigrate(or(smallerThan(1.5GB), not(unusedFor(7d)), largerThan(100)), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "ufsMigrate(or(smallerThan(1536MiB), not(unusedFor(7d)), largerThan(100B)), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
    ),
    # several STORE members; action order is kept
    (
        "ufsMigrate(1h, UFS[s3]:STORE, UFS[hdfs]:REMOVE, UFS[gcs-backup]:STORE)",
        "ufsMigrate(olderThan(1h), UFS[s3]:STORE, UFS[hdfs]:REMOVE, UFS[gcs-backup]:STORE)",
    ),
    # member names are case-sensitive and kept as written
    (
        "ufsMigrate(1d, UFS[HDFS_Prod]:REMOVE, UFS[s3.cold]:STORE)",
        "ufsMigrate(olderThan(1d), UFS[HDFS_Prod]:REMOVE, UFS[s3.cold]:STORE)",
    ),
]


@pytest.mark.parametrize(("text", "canonical"), VALID)
def test_valid_policies_print_canonically_and_round_trip(text, canonical):
    policy = parse_policy(text)
    assert policy.to_text() == canonical
    assert str(policy) == canonical
    assert parse_policy(canonical) == policy


def test_short_and_long_forms_are_the_same_policy():
    short = parse_policy("ufsMigrate(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)")
    long = parse_policy("ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)")
    assert short == long == Policy(OlderThan(Duration(60_000)), HDFS_TO_S3)


def test_parsed_structure():
    policy = parse_policy(
        "tiering:ufsMigrate(and(olderThan(1d), not(or(largerThan(1GiB), smallerThan(1KB)))), "
        "UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
    )
    assert policy.name == "tiering"
    assert policy.condition == And(
        (
            OlderThan(Duration(86_400_000)),
            Not(Or((LargerThan(Size(1024**3)), SmallerThan(Size(1024))))),
        )
    )
    assert policy.remove_members == ("hdfs",)
    assert policy.store_members == ("s3",)
    assert policy.display_name("sales") == "tiering"
    assert parse_policy("ufsMigrate(1m, UFS[a]:REMOVE, UFS[b]:STORE)").display_name("/sales/") == (
        "ufsMigrate-/sales"
    )


# -- invalid policies: exact messages ---------------------------------------------------------------

INVALID = [
    ("", "expected 'ufsMigrate' but found end of input at column 1"),
    ("   ", "expected 'ufsMigrate' but found end of input at column 4"),
    ("ufsMove(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)", "expected 'ufsMigrate' but found 'ufsMove' at column 1"),
    ("ufsMigrate 1m, UFS[hdfs]:REMOVE", "expected '(' but found '1m' at column 12"),
    (
        "ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected ')' but found ',' at column 24",
    ),
    (
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE",
        "expected ')' or ',' but found end of input at column 58",
    ),
    (
        "ufsMigrate(olderThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE) extra",
        "expected end of input but found 'extra' at column 60",
    ),
    (
        "ufsMigrate(1m)",
        "expected ',' and an action such as UFS[s3]:STORE but found ')' at column 14",
    ),
    (
        "ufsMigrate(newerThan(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected a condition (olderThan, unusedFor, largerThan, smallerThan, and, or, not, "
        "or a duration like 1m) but found 'newerThan' at column 12",
    ),
    (
        "ufsMigrate(, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected a condition (olderThan, unusedFor, largerThan, smallerThan, and, or, not, "
        "or a duration like 1m) but found ',' at column 12",
    ),
    ("ufsMigrate(1w, UFS[hdfs]:REMOVE, UFS[s3]:STORE)", "unknown unit 'w' in duration '1w' at column 12"),
    (
        "ufsMigrate(olderThan(60), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "duration '60' needs a unit: ms, s, m, h or d at column 22",
    ),
    (
        "ufsMigrate(olderThan(1.5h), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "duration '1.5h' must be a whole number of its unit at column 22",
    ),
    (
        "ufsMigrate(olderThan(days), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected a duration such as 1m but found 'days' at column 22",
    ),
    (
        "ufsMigrate(olderThan(-1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected a duration such as 1m but found '-1d' at column 22",
    ),
    (
        "ufsMigrate(largerThan(12XB), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "unknown unit 'XB' in size '12XB' at column 23",
    ),
    (
        "ufsMigrate(largerThan(1.2.3MB), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "size '1.2.3MB' is not a number at column 23",
    ),
    (
        "ufsMigrate(largerThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected ')' but found ',' at column 25",
    ),
    (
        "ufsMigrate(and(1m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "and(...) needs at least two conditions at column 18",
    ),
    (
        "ufsMigrate(not(1m, 2m), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected ')' but found ',' at column 18",
    ),
    (
        "ufsMigrate(olderThan(1d), S3[s3]:STORE, UFS[hdfs]:REMOVE)",
        "expected 'UFS' but found 'S3' at column 27",
    ),
    ("ufsMigrate(1d, UFS(hdfs):REMOVE, UFS[s3]:STORE)", "expected '[' but found '(' at column 19"),
    ("ufsMigrate(1d, UFS[]:REMOVE, UFS[s3]:STORE)", "expected a member name but found ']' at column 20"),
    ("ufsMigrate(1d, UFS[hdfs]REMOVE, UFS[s3]:STORE)", "expected ':' but found 'REMOVE' at column 25"),
    (
        "ufsMigrate(1d, UFS[hdfs]:MOVE, UFS[s3]:STORE)",
        "expected STORE or REMOVE but found 'MOVE' at column 26",
    ),
    (
        "ufsMigrate(1d, UFS[s3]:STORE)",
        "policy has no REMOVE action (add one such as UFS[hdfs]:REMOVE) at column 1",
    ),
    (
        "archive:ufsMigrate(1d, UFS[hdfs]:REMOVE)",
        "policy has no STORE action (add one such as UFS[s3]:STORE) at column 9",
    ),
    (
        "ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[hdfs]:STORE)",
        "member 'hdfs' cannot be both STORE and REMOVE at column 38",
    ),
    (
        "ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[s3]:STORE, UFS[s3]:STORE)",
        "UFS[s3]:STORE is listed twice at column 53",
    ),
    ("ufsMigrate(1d, UFS[hdfs/x]:REMOVE)", "unexpected character '/' at column 24"),
    (
        "a b:ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "expected 'ufsMigrate' but found 'a' at column 1",
    ),
    (
        "ufsMigrate(olderThan(1000000000000000000000000000d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "number in duration '1000000000000000000000000000d' is too long at column 22",
    ),
    (
        "ufsMigrate(" + "not(" * 40 + "1m" + ")" * 40 + ", UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "conditions are nested more than 32 deep at column 140",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_policies_name_what_was_expected_and_where(text, message):
    with pytest.raises(PolicyParseError) as caught:
        parse_policy(text)
    error = caught.value
    assert str(error).splitlines()[0] == message
    assert message.endswith(f" at column {error.column}")
    assert 1 <= error.column <= len(text) + 1


def test_error_shows_the_text_with_a_caret_under_the_column():
    with pytest.raises(PolicyParseError) as caught:
        parse_policy("ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)")
    assert str(caught.value) == (
        "expected ')' but found ',' at column 24\n"
        "  ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)\n"
        "                         ^"
    )
    assert caught.value.message == "expected ')' but found ',' at column 24".removesuffix(" at column 24")


def test_caret_stays_aligned_when_the_text_has_newlines_and_tabs():
    with pytest.raises(PolicyParseError) as caught:
        parse_policy("ufsMigrate(\n\t1m UFS")
    _, shown, caret = str(caught.value).splitlines()
    assert shown == "  ufsMigrate(  1m UFS"
    assert caret.index("^") == shown.index("UFS")


def test_parse_error_is_a_value_error_and_survives_pickling():
    with pytest.raises(ValueError):
        parse_policy("nope")
    error = PolicyParseError("expected ')'", 7, "abc(def")
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.message, clone.column, clone.text, str(clone)) == ("expected ')'", 7, "abc(def", str(error))


def test_non_text_is_a_type_error():
    with pytest.raises(TypeError, match="policy text must be a str, got bytes"):
        parse_policy(b"ufsMigrate(1m, UFS[a]:REMOVE, UFS[b]:STORE)")


# -- durations and sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60),
        ("1M", 60),
        ("1min", 60),
        ("2minute", 120),
        ("60s", 60),
        ("30sec", 30),
        ("45second", 45),
        ("1h", 3600),
        ("1hr", 3600),
        ("1hour", 3600),
        ("2d", 172_800),
        ("1day", 86_400),
        ("1D", 86_400),
        ("250ms", 0.25),
        ("1millisecond", 0.001),
        ("0s", 0),
    ],
)
def test_durations_read_as_alluxio_reads_them(text, seconds):
    assert parse_duration(text).seconds == seconds


def test_equal_durations_are_equal_whatever_the_unit():
    assert parse_duration("1m") == parse_duration("60s") == parse_duration("60000ms") == Duration(60_000)
    assert parse_duration("1d") == parse_duration("24h")
    assert parse_duration("90s").to_text() == "90s"
    assert parse_duration("0d").to_text() == "0s"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("100", 100),
        ("100B", 100),
        ("1k", 1024),
        ("1KB", 1024),
        ("1KiB", 1024),
        ("128MB", 128 * 1024**2),
        ("128mib", 128 * 1024**2),
        ("5m", 5 * 1024**2),
        ("1GiB", 1024**3),
        ("1.5GB", 3 * 1024**3 // 2),
        ("2TB", 2 * 1024**4),
        ("1PB", 1024**5),
        ("0.5k", 512),
    ],
)
def test_sizes(text, size):
    assert parse_size(text).bytes == size


def test_sizes_print_exactly():
    assert parse_size("128MB").to_text() == "128MiB"
    assert parse_size("1536KB").to_text() == "1536KiB"
    assert parse_size("1025").to_text() == "1025B"
    assert parse_size("0").to_text() == "0B"


def test_single_quantity_parsers_reject_trailing_input():
    with pytest.raises(PolicyParseError, match="expected 'end of input' but found 'x' at column 4"):
        parse_duration("1m x")
    with pytest.raises(PolicyParseError, match="expected a size such as 128MB but found 'GB'"):
        parse_size("GB")


# -- evaluation -------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


def info(*, age: float = 0, size: int = 10, accessed: float | None = None) -> FileInfo:
    return FileInfo(path="f", size=size, mtime=NOW - age, atime=None if accessed is None else NOW - accessed)


def matches(text: str, file: FileInfo) -> bool:
    return parse_policy(f"ufsMigrate({text}, UFS[a]:REMOVE, UFS[b]:STORE)").condition.matches(file, NOW)


def test_older_than_compares_the_modification_time():
    assert matches("olderThan(1m)", info(age=60))
    assert matches("olderThan(1m)", info(age=61))
    assert not matches("olderThan(1m)", info(age=59.9))
    assert matches("1m", info(age=3600))
    assert not matches("1m", info(age=0))


def test_unused_for_uses_the_later_of_access_and_modification_time():
    assert matches("unusedFor(1h)", info(age=7200, accessed=3600))
    assert not matches("unusedFor(1h)", info(age=7200, accessed=60))  # read a minute ago
    assert not matches("unusedFor(1h)", info(age=60, accessed=7200))  # rewritten a minute ago


def test_unused_for_falls_back_to_modification_time_without_an_access_time():
    assert matches("unusedFor(1h)", info(age=7200))  # S3: no atime
    assert not matches("unusedFor(1h)", info(age=60))
    hdfs_no_atime = FileInfo(path="f", size=1, mtime=NOW - 7200, atime=0.0)  # HDFS, atime disabled
    assert matches("unusedFor(1h)", hdfs_no_atime)


def test_size_conditions_are_strict():
    assert matches("largerThan(1KB)", info(size=1025))
    assert not matches("largerThan(1KB)", info(size=1024))
    assert matches("smallerThan(1KB)", info(size=1023))
    assert not matches("smallerThan(1KB)", info(size=1024))


def test_combinators():
    old_big = info(age=86_400 * 3, size=2 * 1024**3)
    old_small = info(age=86_400 * 3, size=10)
    new_big = info(age=10, size=2 * 1024**3)
    rule = "and(olderThan(2d), largerThan(1GB))"
    assert [matches(rule, f) for f in (old_big, old_small, new_big)] == [True, False, False]
    rule = "or(olderThan(2d), largerThan(1GB))"
    assert [matches(rule, f) for f in (old_big, old_small, new_big)] == [True, True, True]
    rule = "and(olderThan(2d), not(largerThan(1GB)))"
    assert [matches(rule, f) for f in (old_big, old_small, new_big)] == [False, True, False]


# -- members ----------------------------------------------------------------------------------------


def test_validate_members_accepts_known_members():
    validate_members(parse_policy("ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[s3]:STORE)"), ["s3", "hdfs", "local"])


def test_validate_members_names_the_unknown_member_and_the_mounts_members():
    policy = parse_policy("ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[gcs]:STORE)")
    with pytest.raises(PolicyValidationError) as caught:
        validate_members(policy, {"hdfs": object(), "s3": object()}, mount_name="lake")
    assert str(caught.value) == (
        "policy 'ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[gcs]:STORE)' names member 'gcs', "
        "which mount 'lake' does not have; its members are: hdfs, s3"
    )


def test_member_names_are_case_sensitive():
    with pytest.raises(PolicyValidationError, match="names member 'HDFS'"):
        validate_members(parse_policy("ufsMigrate(1d, UFS[HDFS]:REMOVE, UFS[s3]:STORE)"), ["hdfs", "s3"])


# -- property-based ---------------------------------------------------------------------------------

TOKENS = [
    "ufsMigrate", "olderThan", "unusedFor", "largerThan", "smallerThan", "and", "or", "not", "UFS",
    "STORE", "REMOVE", "hdfs", "s3", "name", "1m", "2d", "0s", "60", "1.5h", "128MB", "1.2.3", "-1d",
    "(", ")", "[", "]", ",", ":", " ", "\n", "ms", "x", "é", "/", "9" * 30, ".",
]  # fmt: skip


def _parse_or_parse_error(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyParseError as error:
        assert 1 <= error.column <= len(text) + 1
        assert str(error)
    else:
        assert parse_policy(policy.to_text()) == policy


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_nothing_but_parse_errors(text):
    _parse_or_parse_error(text)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_raises_nothing_but_parse_errors(tokens):
    _parse_or_parse_error("".join(tokens))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.integers(min_value=0, max_value=40))
def test_mutated_valid_policies_raise_nothing_but_parse_errors(tokens, at):
    valid = "archive:ufsMigrate(and(olderThan(1d), not(largerThan(1GB))), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
    at = min(at, len(valid))
    _parse_or_parse_error(valid[:at] + "".join(tokens) + valid[at:])


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,11}", fullmatch=True)
durations = st.builds(Duration, st.integers(min_value=0, max_value=10**12))
sizes = st.builds(Size, st.integers(min_value=0, max_value=10**16))
leaves = st.one_of(
    st.builds(OlderThan, durations),
    st.builds(UnusedFor, durations),
    st.builds(LargerThan, sizes),
    st.builds(SmallerThan, sizes),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=4).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=4).map(tuple)),
    ),
    max_leaves=12,
)


@st.composite
def policies(draw) -> Policy:
    members = draw(st.lists(names, min_size=2, max_size=5, unique=True))
    split = draw(st.integers(min_value=1, max_value=len(members) - 1))
    actions = [Action(m, Operation.REMOVE) for m in members[:split]]
    actions += [Action(m, Operation.STORE) for m in members[split:]]
    ordered = draw(st.permutations(actions))
    name = draw(st.one_of(st.none(), names))
    return Policy(condition=draw(conditions), actions=tuple(ordered), name=name)


@settings(max_examples=300, deadline=None)
@given(policies())
def test_generated_policies_round_trip_through_their_text(policy):
    assert parse_policy(policy.to_text()) == policy
