"""The MTA-STS parsers and MX matching (RFC 8461 §3.1, §3.2, §4.1): table tests and a fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.mta_sts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_BYTES,
    Policy,
    PolicyError,
    mx_matches,
    parse_policy,
    parse_txt_record,
    select_txt_record,
)

GOOD = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n"


# --- TXT record ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, record_id", [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1; id=1", "1"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1 ;\tid=abc ; ", "abc"),
    ("v=STSv1; ext=x.y-z; id=A1", "A1"),
    ("v=STSv1; id=first; id=second", "first"),  # the first occurrence counts
    ("v=STSv1; id=" + "a" * 32, "a" * 32),
])
def test_valid_txt_records(text: str, record_id: str) -> None:
    assert parse_txt_record(text).id == record_id


@pytest.mark.parametrize("text", [
    "v=STSv1",  # no id
    "v=STSv1;",
    "v=STSv2; id=1",
    "V=STSv1; id=1",  # case-sensitive
    " v=STSv1; id=1",
    "v=STSv1; id=",
    "v=STSv1; id=a-b",  # id is alphanumeric
    "v=STSv1; id=" + "a" * 33,
    "v=STSv1; id=1;; x=y",
    "v=STSv1; id=1; x",
    "v=STSv1; id=1; x=a b",
    "v=STSv1; id=1; _x=y",
])
def test_invalid_txt_records(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_txt_record(text)


def test_selecting_the_one_record_among_the_domains_txt() -> None:
    assert select_txt_record([]) is None
    assert select_txt_record(["v=spf1 -all", "v=STSv10; id=1"]) is None  # not ours
    assert select_txt_record(["v=spf1 -all", "v=STSv1; id=7"]) == parse_txt_record("v=STSv1; id=7")
    with pytest.raises(PolicyError):  # two: the domain has no available policy
        select_txt_record(["v=STSv1; id=1", "v=STSv1; id=2"])
    with pytest.raises(PolicyError):  # one that looks like ours but is broken
        select_txt_record(["v=STSv1; id=no good"])


# --- policy file -----------------------------------------------------------------------------
def test_a_policy_with_lf_or_crlf_lines() -> None:
    want = Policy("enforce", ("mail.example.com", "*.example.net"), 86400)
    assert parse_policy(GOOD) == want
    assert parse_policy(GOOD.replace("\n", "\r\n").encode()) == want
    assert parse_policy(GOOD.rstrip("\n")) == want  # no final line break
    assert parse_policy("\n" + GOOD.replace("\n", " \t\n\n")) == want  # blank lines, trailing WSP


def test_repeated_fields_first_wins_except_mx() -> None:
    text = GOOD + "mode: testing\nmax_age: 5\nversion: STSv2\nmx: other.example.org\n"
    policy = parse_policy(text)
    assert (policy.mode, policy.max_age) == ("enforce", 86400)
    assert policy.mx == ("mail.example.com", "*.example.net", "other.example.org")


def test_max_age_bounds() -> None:
    assert parse_policy(GOOD.replace("86400", "0")).max_age == 0
    assert parse_policy(GOOD.replace("86400", "9999999999")).max_age == MAX_AGE_LIMIT
    assert parse_policy(GOOD.replace("86400", str(MAX_AGE_LIMIT))).max_age == MAX_AGE_LIMIT
    for bad in ("99999999999", "-1", "1.5", "1e3", "", "0x10"):
        with pytest.raises(PolicyError):
            parse_policy(GOOD.replace("86400", bad))


def test_mode_none_needs_no_mx_and_unknown_fields_are_ignored() -> None:
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 10\nfuture-field: a b c\n")
    assert policy == Policy("none", (), 10)
    with pytest.raises(PolicyError):
        parse_policy("version: STSv1\nmode: testing\nmax_age: 10\n")


@pytest.mark.parametrize("text", [
    "",
    "mode: enforce\nmx: a.example\nmax_age: 1\n",  # no version
    GOOD.replace("STSv1", "stsv1"),
    GOOD.replace("enforce", "Enforce"),  # values are case-sensitive
    GOOD.replace("enforce", "reject"),
    GOOD.replace("mode: enforce\n", ""),
    GOOD.replace("max_age: 86400\n", ""),
    GOOD.replace("mail.example.com", "mail..example.com"),
    GOOD.replace("mail.example.com", "-mail.example.com"),
    GOOD.replace("mail.example.com", "mail.*.example.com"),
    GOOD.replace("mail.example.com", "**.example.com"),
    GOOD.replace("mail.example.com", "bücher.example"),  # U-labels are not allowed
    GOOD.replace("mail.example.com", "mail.example.com extra"),
    GOOD.replace("mx: mail", "mx mail"),
    GOOD + "mode:\n",
    GOOD + ": value\n",
    GOOD + "bad\x01name: x\n",
])
def test_malformed_policies(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_size_and_encoding_limits() -> None:
    padded = GOOD.encode() + b"x-pad: " + b"y" * MAX_POLICY_BYTES + b"\n"
    with pytest.raises(PolicyError, match="64 KiB"):
        parse_policy(padded)
    with pytest.raises(PolicyError, match="UTF-8"):
        parse_policy(GOOD.encode() + b"x: \xff\n")


def test_patterns_are_lowercased_and_lose_a_trailing_dot() -> None:
    assert parse_policy(GOOD.replace("mail.example.com", "MAIL.Example.COM.")).mx[0] == \
        "mail.example.com"


# --- matching ------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, host, ok", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.example.com.", True),
    ("mail.example.com", "mail2.example.com", False),
    ("mail.example.com", "example.com", False),
    ("*.example.com", "mx1.example.com", True),
    ("*.example.com", "MX1.EXAMPLE.COM.", True),
    ("*.example.com", "example.com", False),  # the wildcard needs one label
    ("*.example.com", "a.b.example.com", False),  # and only one
    ("*.example.com", ".example.com", False),
    ("*.example.com", "mx1.example.com.evil", False),
    ("*.example.com", "mx1.notexample.com", False),
])
def test_mx_matching(pattern: str, host: str, ok: bool) -> None:
    assert mx_matches(pattern, host) is ok


# --- fuzz: any input parses or raises PolicyError, never anything else --------------------
_policy_lines = st.lists(st.one_of(
    st.sampled_from([*GOOD.splitlines(), "mode: testing", "mode: none", "mx: *.a.b", ""]),
    st.text(max_size=40),
), max_size=12)


@given(_policy_lines, st.sampled_from(["\n", "\r\n", "\r"]))
def test_fuzz_policy(lines: list[str], eol: str) -> None:
    text = eol.join(lines)
    for body in (text, text.encode("utf-8", "surrogatepass")):
        try:
            policy = parse_policy(body)
        except PolicyError:
            continue
        assert policy.mode in ("enforce", "testing", "none")
        assert 0 <= policy.max_age <= MAX_AGE_LIMIT
        assert policy.mx or policy.mode == "none"
        for pattern in policy.mx:
            assert pattern == pattern.lower() and not pattern.endswith(".")
            assert policy.matches(pattern.removeprefix("*.").join(["x.", ""])
                                  if pattern.startswith("*.") else pattern)


@given(st.lists(st.one_of(st.text(max_size=60),
                          st.text(max_size=40).map(lambda t: "v=STSv1; " + t)), max_size=4))
def test_fuzz_txt(texts: list[str]) -> None:
    try:
        record = select_txt_record(texts)
    except PolicyError:
        return
    if record is not None:
        assert 1 <= len(record.id) <= 32 and record.id.isascii() and record.id.isalnum()


@given(st.text(max_size=30), st.text(max_size=30))
def test_fuzz_matching(pattern: str, host: str) -> None:
    assert isinstance(mx_matches(pattern.lower(), host), bool)
