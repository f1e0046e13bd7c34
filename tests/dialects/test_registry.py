"""extract(): every dialect at once, stripping byte for byte, precedence, errors; and a property
test over random header blocks."""

import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.dialects.test_infobip import SEED_FIELDS as INFOBIP_FIELDS
from tests.dialects.test_zoho import FILLED as ZOHO_FILLED
from tests.dialects.test_zoho import FILLED_FIELDS as ZOHO_FIELDS

from postroom.dialects import DialectError, SendOptions, extract, is_control_header, registry

# Infobip's "fully featured MIME example" (seed 003), its header block as published.
INFOBIP = b"""Subject: Fully Featured SMTP Example
From: "Sender Name" <[email protected]>
Reply-To: [email protected]
To: [email protected], [email protected]
Cc: [email protected]
Message-ID: <[email protected]>
X-IB-Bulk-Id: 1234567890
X-IB-Tracking-Url: https://www.example.com/email/webhook/server
X-IB-Intermediate-Report: true
X-IB-Notify-Url: https://www.example.com/email/delivery/server
X-IB-Notify-Content-Type: application/json
X-IB-Callback-Data: [{"id": 1, "desc": "Callback Data Example as JSON"}]
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="example_boundary"

--example_boundary
"""


def without(block: bytes, prefix: bytes) -> bytes:
    return b"".join(line for line in block.splitlines(keepends=True) if not line.startswith(prefix))


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_infobip_example_is_stripped_byte_for_byte(eol: bytes) -> None:
    block = INFOBIP.replace(b"\n", eol)
    options, rest = extract(block)
    assert options == SendOptions(dialects=("infobip",), **INFOBIP_FIELDS)
    assert rest == without(block, b"X-IB-")


def test_zoho_example_without_space_after_the_colon() -> None:
    block = b"Subject: My first mail\r\nX-ZCEA-SMTP-DATA:" + ZOHO_FILLED.encode() + b"\r\n\r\n"
    options, rest = extract(block)
    assert options == SendOptions(dialects=("zoho",), **ZOHO_FIELDS)
    assert rest == b"Subject: My first mail\r\n\r\n"


def test_folded_fields_go_whole_and_others_keep_their_folding() -> None:
    block = (b"Received: from a\r\n\tby b; Thu, 1 Jan 2030 00:00:00 +0000\r\n"
             b"X-SMTPAPI: {\"category\": [\"a\",\r\n  \"b\"],\r\n\t\"unique_args\": {\"k\": 1}}\r\n"
             b"Subject: folded\r\n subject\r\n"
             b"x-pm-tag  :  welcome\r\n"  # any case, blanks before the colon
             b"\r\nX-PM-Tag: in the body, untouched\r\n")
    options, rest = extract(block)
    assert options.tags == ("welcome", "a", "b") and options.metadata == {"k": "1"}
    assert rest == (b"Received: from a\r\n\tby b; Thu, 1 Jan 2030 00:00:00 +0000\r\n"
                    b"Subject: folded\r\n subject\r\n\r\nX-PM-Tag: in the body, untouched\r\n")


def test_bare_cr_cannot_hide_a_control_field() -> None:
    options, rest = extract(b"Subject: a\rX-TM-CLIENT-REF: hidden\rX-Other: b\n\n")
    assert options.client_reference == "hidden"
    assert rest == b"Subject: a\rX-Other: b\n\n"


def test_bare_cr_then_bare_lf_is_refused_rather_than_rejoined() -> None:
    # cutting the field would join "\r" and "\n" into one CRLF: the blank line would vanish and
    # the body's first line would become a header
    with pytest.raises(DialectError, match=r"^X-PM-Tag: follows a line ending in a bare CR"):
        extract(b"Subject: a\rX-PM-Tag: t\r\n\nX-Mailgun-Tag: body\n")


def test_a_block_without_control_headers_is_returned_as_is() -> None:
    block = b" orphan continuation\r\nnot a header\r\nX-Postroom-Unknown: kept\r\nSubject: x"
    assert extract(block) == (SendOptions(), block)
    assert extract(b"") == (SendOptions(), b"")


# (lower-precedence header, higher-precedence header, field, expected value)
PRECEDENCE = [
    (("X-IB-Bulk-Id", "ib"), ("X-Postroom-Campaign", "pr"), "campaign_id", "pr"),
    (("X-TM-OPEN-TRACK", "true"), ("X-Postroom-Track-Opens", "no"), "track_opens", False),
    (("X-Mailgun-Deliver-By", "Fri, 14 Oct 2011 23:10:10 -0000"), ("X-SMTPAPI", '{"send_at": 0}'),
     "send_at", datetime(1970, 1, 1, tzinfo=UTC)),
    (("X-PM-TrackOpens", "false"), ("X-Mailgun-Track-Opens", "yes"), "track_opens", True),
    (("X-SES-MESSAGE-TAGS", "k=ses"), ("X-PM-Metadata-k", "pm"), "metadata", {"k": "pm"}),
    (("X-PM-Tag", "pm"), ("X-Mailgun-Tag", "mg"), "tags", ("pm", "mg")),
    (("X-Mailgun-Recipient-Variables", '{"a@x.org": {"n": "mg"}}'),
     ("X-ZCEA-SMTP-DATA", '{"recipient_data": {"a@x.org": {"merge_data": {"n": "zoho"}}}}'),
     "substitution_syntax", "zoho"),
    (("X-Mailgun-Recipient-Variables", '{"a@x.org": {"n": "mg", "m": "mg"}}'),
     ("X-ZCEA-SMTP-DATA", '{"recipient_data": {"a@x.org": {"merge_data": {"n": "zoho"}}}}'),
     "recipient_vars", {"a@x.org": {"n": "zoho", "m": "mg"}}),
    (("X-ZCEA-SMTP-DATA", '{"campaign_name": "zoho"}'), ("X-Postroom-Campaign-Name", "pr"),
     "campaign_name", "pr"),
]


@pytest.mark.parametrize(("low", "high", "field", "expected"), PRECEDENCE)
def test_precedence_whatever_the_order(low: tuple[str, str], high: tuple[str, str], field: str,
                                       expected: object) -> None:
    for pair in ((low, high), (high, low)):
        block = b"".join(f"{n}: {v}\r\n".encode() for n, v in pair)
        assert getattr(extract(block)[0], field) == expected


@pytest.mark.parametrize(("block", "header", "problem"), [
    (b"x-tm-open-track: maybe\r\n", "x-tm-open-track", 'expected yes or no, not "maybe"'),
    (b"X-SMTPAPI: {\"to\": [\"ben\r\n\"]}\r\n", "X-SMTPAPI", "value is not valid JSON"),
    (b"X-PM-Tag: caf\xe9\r\n", "X-PM-Tag", "value is not valid UTF-8"),
    (b"X-PM-Tag: =?utf-8?b?###?=\r\n", "X-PM-Tag", "bad RFC 2047 encoded-word"),
    (b"X-PM-Tag: =?x-klingon?q?a?=\r\n", "X-PM-Tag", 'unknown charset "x-klingon"'),
    (b"X-PM-Tag: =?utf-8?q?a=0Ab?=\r\n", "X-PM-Tag", "tag contains control characters"),
    (b"X-Postroom-Tags: " + b"a" * (16 << 20) + b"\r\n", "X-Postroom-Tags", "value is too large"),
    (b"".join(b"X-Mailgun-Tag: m%d\r\n" % i for i in range(30)) + b"X-Postroom-Tags: "
     + b",".join(b"p%d" % i for i in range(30)) + b"\r\n", "X-Postroom-Tags",
     "more than 50 tags in all"),
])
def test_malformed_header_is_named(block: bytes, header: str, problem: str) -> None:
    with pytest.raises(DialectError) as caught:
        extract(b"Subject: x\r\n" + block + b"\r\nbody")
    assert (caught.value.header, caught.value.problem[:len(problem)]) == (header, problem)
    assert "\r" not in str(caught.value) and "\n" not in str(caught.value)


def test_rfc2047_values_as_mail_libraries_write_them() -> None:
    msg = EmailMessage(policy=SMTP)
    msg["X-PM-Tag"] = "café crème"
    msg["X-Mailgun-Recipient-Variables"] = json.dumps(
        {"zoe@example.com": {"name": "Zoë Ærø", "city": "Zürich"}}, ensure_ascii=False)
    msg["X-Postroom-Callback-Data"] = '{"a": "=?utf-8?q?not_decoded?"}'
    split = b"X-Postroom-Client-Ref: =?utf-8?q?caf=C3?=\r\n =?UTF-8?Q?=A9?=\r\n"  # é in 2 words
    options, rest = extract(split + bytes(msg))
    assert options.tags == ("café crème",) and options.client_reference == "café"
    assert options.recipient_vars == {"zoe@example.com": {"name": "Zoë Ærø", "city": "Zürich"}}
    assert options.callback_data == '{"a": "=?utf-8?q?not_decoded?"}'
    assert rest == b"\r\n"


def test_ten_thousand_recipient_zoho_campaign() -> None:
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = "Summer is here"
    msg["X-ZCEA-SMTP-DATA"] = json.dumps({"campaign_name": "Summer", "recipient_data": {
        f"user{i}@example.com": {"name": f"Zoë {i}", "merge_data": {"first_name": f"Zoë{i}"}}
        for i in range(10_000)}}, ensure_ascii=False)
    options, rest = extract(bytes(msg))
    assert len(options.recipient_vars) == 10_000
    assert options.recipient_vars["user9999@example.com"] == {"first_name": "Zoë9999"}
    assert rest == b"Subject: Summer is here\r\n\r\n"


@pytest.mark.parametrize(("name", "control"), [
    ("X-SMTPAPI", True), ("x-smtpapi ", True), ("X-ZCEA-SMTP-DATA", True), ("X-TM-FILE-KEY", True),
    ("X-IB-Callback-Data", True), ("X-Mailgun-Recipient-Variables", True), ("X-PM-KeepID", True),
    ("X-PM-Metadata-anything", True), ("X-Postroom-Metadata-x", True), ("X-SES-FROM-ARN", True),
    ("X-Postroom-Unknown", False), ("X-PM-Other", False), ("Subject", False), ("X-Mailer", False),
])
def test_is_control_header(name: str, control: bool) -> None:
    assert is_control_header(name) is control


def test_every_dialect_owns_its_own_lowercase_headers() -> None:
    names = [d.name for d in registry.DIALECTS]
    assert names == ["ses", "postmark", "mailgun", "sendgrid", "infobip", "zeptomail", "zoho",
                     "postroom"]
    owned = [h for d in registry.DIALECTS for h in d.headers]
    assert len(owned) == len(set(owned)) and all(h == h.lower() for h in owned)
    assert all(is_control_header(h) for h in owned)


# --- random header blocks ------------------------------------------------------------------
NAMES = [*sorted(registry._HEADERS), "X-PM-Metadata-k", "X-Postroom-Metadata-k", "X-PM-Metadata-",
         "Subject", "Received", "X-Postroom-Unknown", "From"]
VALUES = ["yes", "no", "", "a@example.com", "k1:a.pdf,k2", "{}", '{"a@x.org": {"n": 1}}',
          '{"to": ["a@x.org"], "sub": {"-n-": ["A"]}}', "2030-01-01T00:00:00Z", "https://x.org/",
          "=?utf-8?q?caf=C3=A9?=", "application/json", "k=v, k2=v2", "[", "None"]
EOL = st.sampled_from([b"\r\n", b"\n", b"\r"])
name = st.tuples(st.sampled_from(NAMES), st.sampled_from([str, str.upper, str.lower])).map(
    lambda t: t[1](t[0]).encode())
value = st.one_of(st.sampled_from(VALUES).map(str.encode), st.text(max_size=30).map(str.encode),
                  st.binary(max_size=30))
field = st.builds(lambda n, sep, v, eol, fold: n + sep + v.replace(b" ", eol + b" " if fold else b" ")
                  + eol, name, st.sampled_from([b":", b": ", b" :"]), value, EOL, st.booleans())
block = st.lists(st.one_of(field, field, st.binary(max_size=20), EOL), max_size=12).map(b"".join)

_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block)
def test_random_blocks_return_or_raise_dialect_error(raw: bytes) -> None:
    try:
        options, rest = extract(raw)
    except DialectError as e:
        assert "\n" not in str(e) and "\r" not in str(e)
        return
    assert isinstance(options, SendOptions)
    json.dumps(options.to_json(), allow_nan=False)
    assert extract(rest) == (SendOptions(), rest)  # nothing left to find, nothing else cut
    parsed = BytesHeaderParser(policy=compat32).parsebytes(rest)
    assert not [k for k in parsed if is_control_header(k)]
    lines = iter(_LINES.findall(raw))  # what is left is the input minus whole lines
    assert all(any(line == kept for line in lines) for kept in _LINES.findall(rest) if kept)
