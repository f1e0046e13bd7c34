"""Header extraction: the fast path gives exactly what the stdlib path gives (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.submission.message import (
    _parse_stdlib,
    _plain_fields,
    header_block,
    parse_headers,
)

NAMES = ["From", "from", "FROM", "Subject", "subject", "Message-ID", "Message-Id", "Date", "To",
         "X-Foo", "Received", "Reply-To"]
ODD_NAMES = ["From ", "Fro m", "", "Subject ", "Dâte"]
VALUES = [
    "a@example.com", "<a@example.com>", "Ann <a@example.com>", '"Doe, Ann" <a@example.com>',
    '"" <a@example.com>', "Ann  Lee\t<a@b.example>", "a@b, c@d", "<a@b>, Ann <c@d>", "(c) a@b",
    "a.b.c@d.e", "a..b@c", "a@[1.2.3.4]", "a@b.", "Ann <a@b> x", "<>", "", "   ", "@", "a@",
    "John Q. Public <j@q.example>", '"a\\"b" <a@b>', "=?utf-8?q?caf=C3=A9?=", "=?utf-8?b?w6k=?= x",
    "=?bad?q?x?=", "=?utf-8?q?bro", "Hello  world ", "<1234.5678@vm>", " <x@y> ", "ann <a@b",
    "Sun, 22 Nov 2026 18:00:26 +0000", "x\x00y", "a\x0cb", "a@b>", "=?", "O'Neil <o'n@x.example>",
]
ODD_VALUES = ["café", "ünï@ex.com", "a@b\r", "x\udcffy"]


@st.composite
def blocks(draw: st.DrawFn) -> bytes:
    """Mostly plain blocks (the fast path), some with one oddity (the stdlib path)."""
    odd = draw(st.integers(0, 3)) == 0
    sep = draw(st.sampled_from(["\r\n", "\n"] + (["\r"] if odd else [])))
    names = NAMES + ODD_NAMES if odd else NAMES
    values = VALUES + ODD_VALUES if odd else VALUES
    lines = []
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.sampled_from([" ", "\t", "  "])) + draw(st.sampled_from(values)))
        elif kind == 1 and odd:
            lines.append(draw(st.text(st.characters(max_codepoint=0x7f), max_size=12)))
        else:
            lines.append(draw(st.sampled_from(names)) + ":"
                         + draw(st.sampled_from(["", " ", "\t", "  "])) + draw(st.sampled_from(values)))
    seps = [draw(st.sampled_from([sep, "\r\n", "\n", "\r"])) if odd else sep for _ in lines]
    text = "".join(line + s for line, s in zip(lines, seps, strict=True))
    text += draw(st.sampled_from([sep, "", sep + "body" + sep]))
    return text.encode("utf-8", "surrogateescape")


@settings(max_examples=1000, deadline=None)
@given(blocks())
def test_fast_path_matches_stdlib(data: bytes) -> None:
    assert parse_headers(data) == _parse_stdlib(header_block(data))


def test_fast_path_taken_for_plain_mail() -> None:
    block = (b"From: <a@example.com>\r\nTo: <b@example.org>\r\nDate: Sun, 22 Nov 2026 18:00:26 +0000"
             b"\r\nMessage-Id: <2836.0003.0000@vm>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n")
    assert _plain_fields(block) is not None
    parsed = parse_headers(block + b"body\r\n")
    assert (parsed.header_from, parsed.from_count, parsed.subject, parsed.message_id,
            parsed.has_date) == ("a@example.com", 1, "café", "<2836.0003.0000@vm>", True)


def test_folded_and_repeated_fields() -> None:
    block = b"Subject: one\r\n two\r\nFrom: a@b.example\r\nFROM: Ann <c@d.example>\r\n\r\n"
    parsed = parse_headers(block)
    assert parsed.subject == "one two" and parsed.from_count == 2 and parsed.header_from == ""
    assert parsed == _parse_stdlib(block)
