"""RFC 2047 encoded-words in control headers: decoded where RFC 2047 puts them (whole
whitespace-separated words), never inside a word, and never inside JSON that is JSON as written."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.dialects import SendOptions, extract


def options(*fields: tuple[str, str]) -> SendOptions:
    block = "".join(f"{name}: {value}\r\n" for name, value in fields)
    found, rest = extract(block.encode() + b"\r\n")
    assert rest == b"\r\n"
    return found


def test_encoded_text_inside_json_strings_is_data() -> None:
    api = {"sub": {"-code-": ["=?utf-8?q?a?= =?utf-8?q?b?="]},
           "unique_args": {"subject": "=?utf-8?b?w6k=?= x", "k": "x=?utf-8?q?a?="}}
    found = options(("X-SMTPAPI", json.dumps(api)))
    assert found.sendgrid_sub == {"-code-": ("=?utf-8?q?a?= =?utf-8?q?b?=",)}
    assert found.metadata == {"subject": "=?utf-8?b?w6k=?= x", "k": "x=?utf-8?q?a?="}
    variables = {"note": "see =?utf-8?q?caf=C3=A9?= here", "raw": "=?utf-8?q?x?="}
    found = options(("X-Postroom-Global-Variables", json.dumps(variables)))
    assert found.global_vars == variables


@pytest.mark.parametrize(("value", "expected"), [
    ("abc=?utf-8?q?a?=def", "abc=?utf-8?q?a?=def"),  # part of a word
    ("x=?utf-8?q?caf=C3=A9?=", "x=?utf-8?q?caf=C3=A9?="),
    ("=?utf-8?q?caf=C3=A9?=!", "=?utf-8?q?caf=C3=A9?=!"),
    ("(=?utf-8?q?a?=)", "(=?utf-8?q?a?=)"),
    ("Spring =?utf-8?q?sal=C3=A9?= 2030", "Spring salé 2030"),  # words of their own
    ("=?utf-8?q?caf=C3?=  =?UTF-8?Q?=A9?= au lait", "café au lait"),  # joined across spaces
    ("[Promo] =?utf-8?q?Caf=C3=A9?=", "[Promo] Café"),  # text that merely starts like JSON
])
def test_only_whole_words_are_decoded(value: str, expected: str) -> None:
    assert options(("X-Postroom-Campaign-Name", value)).campaign_name == expected


def test_json_a_mail_library_encoded_is_still_read() -> None:
    """Python's email package encodes non-ASCII JSON as whole words that cut across its
    strings: not JSON as written, so it is decoded first."""
    msg = EmailMessage(policy=SMTP)
    variables = {"name": "Ann Zoë", "plain": "words here", "city": "Zürich"}
    msg["X-Postroom-Global-Variables"] = json.dumps(variables, ensure_ascii=False)
    assert b"=?utf-8?" in bytes(msg)
    found, _ = extract(bytes(msg))
    assert found.global_vars == variables


json_text = st.one_of(
    st.sampled_from(["=?utf-8?q?a?=", "x =?utf-8?b?w6k=?= y", "=?utf-8?q?a?= =?utf-8?q?b?=",
                     '=?utf-8?q?=22?=', "?= =?", "a\\b", "Zoë"]),
    st.text(max_size=12))
json_value = st.recursive(
    st.one_of(json_text, st.integers(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(json_text, inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(str.isalnum), json_value,
                       min_size=1, max_size=4),
       st.booleans())
def test_json_as_written_is_never_changed(data: dict[str, object], ascii_only: bool) -> None:
    text = json.dumps(data, ensure_ascii=ascii_only)
    assert options(("X-Postroom-Global-Variables", text)).global_vars == data
