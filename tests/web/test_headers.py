"""The headers a message's page shows (web/headers.py): decoded, and bounded work on any input.

The slow cases are the ones the stdlib's modern header parser took tens of seconds on (folded
backslashes, quotes, dots); the bound asserted is generous for a loaded 2-core machine."""

from __future__ import annotations

import time

import pytest

from postroom.store.dashboard_data import HeaderBlock
from postroom.store.dashboard_messages import HEAD_CAP
from postroom.web.headers import PER_NAME, VALUE_CAP, shown_headers


def _shown(data: bytes, complete: bool = True) -> list[tuple[str, str, int]]:
    return [(h.name, h.value, h.cut) for h in shown_headers(HeaderBlock(data, complete)).fields]


def test_headers_are_decoded_in_a_fixed_order_without_bcc() -> None:
    block = ("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=\r\n"
             "X-Other: skipped\r\nBcc: hidden@example.com\r\n"
             "To: =?utf-8?b?w4RubmU=?= <anne@example.org>,\r\n\tbob@example.org\r\n"
             "From: Café <news@shop.example>\r\n"
             "Cc: =?bogus-charset?q?abc?= <c@example.org>\r\n"
             "Reply-To: =?utf-8?q?broken <r@example.org>\r\n").encode()
    assert _shown(block) == [
        ("From", "Café <news@shop.example>", 0),
        ("Reply-To", "=?utf-8?q?broken <r@example.org>", 0),
        ("To", "Änne <anne@example.org>, bob@example.org", 0),
        ("Cc", "abc <c@example.org>", 0),
        ("Subject", "Grüße aus Köln", 0),
    ]
    assert _shown(b"From: \x00ctl\x1b <a@b.example>\n") == [("From", "\ufffdctl\ufffd <a@b.example>", 0)]


@pytest.mark.parametrize("line", [b"\\" * 900, b'"a",' * 225, b"a." * 450, b"=?utf-8?q?a?= " * 64],
                         ids=["backslashes", "quotes", "dots", "encoded-words"])
@pytest.mark.parametrize("name", [b"Cc", b"To", b"From", b"Reply-To", b"Subject"])
def test_crafted_values_take_bounded_time_and_are_cut_visibly(line: bytes, name: bytes) -> None:
    """63 KB of folded crafted text in one value froze the event loop for ~25 s; a MiB of it
    (the most a page reads) now takes well under a second."""
    value = b"\r\n ".join([line] * (HEAD_CAP // (len(line) + 3)))
    started = time.monotonic()
    [(shown_name, text, cut)] = _shown(name + b": " + value)
    assert time.monotonic() - started < 2.0
    assert shown_name == name.decode() and cut > HEAD_CAP // 2
    assert len(text) <= VALUE_CAP


def test_many_short_folds_and_many_repeats_stay_linear() -> None:
    folds = b"To: " + b"\r\n x" * (HEAD_CAP // 4)
    repeats = b"Cc: a@example.org\r\n" * (HEAD_CAP // 19)
    started = time.monotonic()
    [(_, text, cut)] = _shown(folds)
    found = shown_headers(HeaderBlock(repeats))
    assert time.monotonic() - started < 2.0
    assert cut > 0 and text.startswith("x x x")
    assert len(found.fields) == PER_NAME and found.left_out["Cc"] == HEAD_CAP // 19 - PER_NAME


def test_a_cut_block_is_reported() -> None:
    assert shown_headers(HeaderBlock(b"Subject: hi", complete=False)).complete is False
    assert shown_headers(HeaderBlock(b"Subject: hi")).complete is True
