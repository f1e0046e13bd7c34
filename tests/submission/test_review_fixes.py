"""Header From review fixes: one valid mailbox, every From field counted, on both parsers."""

from __future__ import annotations

import pytest

from postroom.submission.message import _parse_stdlib, header_block, parse_headers


@pytest.mark.parametrize("block", [
    b"From: evil@bad.com@shop.example\r\n\r\n",
    b"From: Evil <evil@bad.com@shop.example>\r\n\r\n",
    b"From: <ceo@bad.com\t@shop.example>\r\n\r\n",
    b"From: evil@bad.com\x00a@shop.example\r\n\r\n",
    b"From: Ann\x01 <a@shop.example>\r\n\r\n",
])
def test_from_that_is_not_one_valid_mailbox_gives_no_address(block: bytes) -> None:
    parsed = parse_headers(block)
    assert (parsed.header_from, parsed.from_count) == ("", 1)
    assert parsed == _parse_stdlib(header_block(block))


@pytest.mark.parametrize("block", [
    b"From : evil@bad.com\r\nFrom: a@shop.example\r\n\r\n",  # obs-from, first line
    b"Subject: x\r\nFROM\t: evil@bad.com\r\nFrom: a@shop.example\r\n\r\n",
    b"From: a@shop.example\nfrom  : evil@bad.com\n\n",
    b"From:\r\nFrom: a@shop.example\r\n\r\n",  # an empty From field is a field too
])
def test_every_from_field_counts(block: bytes) -> None:
    parsed = parse_headers(block)
    assert parsed.header_from == "" and parsed.from_count == 2


def test_plain_from_is_unchanged() -> None:
    parsed = parse_headers(b"From: \"Shop, Inc\" <news@shop.example>\r\nSubject: x\r\n\r\n")
    assert (parsed.header_from, parsed.from_count) == ("news@shop.example", 1)
