"""The plain/HTML composer: byte-for-byte what it wrote before its memos (parts per content,
Date per second, bare addresses), and the memos never mix two messages up."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from postroom.submission import compose as composer
from postroom.submission.compose import Attachment, Composition, compose

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

HTML_MAIL = (
    b'From: Shop <news@shop.example>\r\nTo: r@example.org\r\nSubject: Hello\r\n'
    b'Date: Mon, 06 May 2024 07:08:09 +0000\r\nMessage-ID: <m1@host>\r\nMIME-Version: 1.0\r\n'
    b'Content-Type: multipart/alternative; boundary="=_pr_cbcb5388602a2ea50f742f06"\r\n\r\n'
    b'--=_pr_cbcb5388602a2ea50f742f06\r\nContent-Type: text/plain; charset="utf-8"\r\n'
    b'Content-Transfer-Encoding: 7bit\r\n\r\nHi & bye <https://x.example/a>\r\n\r\n'
    b'--=_pr_cbcb5388602a2ea50f742f06\r\nContent-Type: text/html; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n\r\n<p>Hi &amp; <a href='https://x.example/a'>bye</a>"
    b"</p>\r\n\r\n--=_pr_cbcb5388602a2ea50f742f06--\r\n")

TEXT_MAIL = (
    b"From: a@shop.example\r\nTo: =?utf-8?q?Zo=C3=AB?= <z@example.org>,\r\n b@example.org\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nDate: Mon, 06 May 2024 12:38:09 +0530\r\n"
    b'Message-ID: <m2@host>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"'
    b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline\r\nna=C3=AFve\r\n")


def html_mail(content: str = "<p>Hi &amp; <a href='https://x.example/a'>bye</a></p>"
              ) -> Composition:
    return Composition(from_name="Shop", from_email="news@shop.example",
                       to=[("", "r@example.org")], subject="Hello", content=content)


def test_same_bytes_as_before_the_memos() -> None:
    for _ in range(2):  # the second time from the memos
        assert compose(html_mail(), message_id="<m1@host>", date=WHEN) == HTML_MAIL
        text = Composition(from_name="", from_email="a@shop.example",
                           to=[("Zoë", "z@example.org"), ("", "b@example.org")],
                           subject="Grüße", content="line\nnaïve", mail_format="text")
        india = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
        assert compose(text, message_id="<m2@host>", date=india) == TEXT_MAIL


def test_date_memo_tells_offsets_and_seconds_apart() -> None:
    plus_one = WHEN.astimezone(timezone(timedelta(hours=1)))
    dates = [WHEN, plus_one, WHEN + timedelta(seconds=1), WHEN.replace(microsecond=5)]
    headers = [compose(html_mail(), message_id="<m@h>", date=d).split(b"\r\n")[3]
               for d in dates]
    assert headers == [b"Date: Mon, 06 May 2024 07:08:09 +0000",
                       b"Date: Mon, 06 May 2024 08:08:09 +0100",
                       b"Date: Mon, 06 May 2024 07:08:10 +0000",
                       b"Date: Mon, 06 May 2024 07:08:09 +0000"]


def test_large_bodies_bypass_the_memo_with_the_same_result() -> None:
    lines = composer._MEMO_MAX // 8
    big = "<p>word</p>\n" * lines
    small_memo = composer._memo_parts.cache_info().currsize
    raw = compose(html_mail(big), message_id="<m@h>", date=WHEN)
    assert composer._memo_parts.cache_info().currsize == small_memo
    assert raw.count(b"word") == 2 * lines and b"quoted-printable" not in raw


def test_each_message_gets_its_own_boundary_and_content() -> None:
    a = compose(html_mail("<p>a</p>"), message_id="<a@h>", date=WHEN)
    b = compose(html_mail("<p>b</p>"), message_id="<b@h>", date=WHEN)
    assert b"<p>a</p>" in a and b"<p>b</p>" in b and b"<p>a</p>" not in b
    assert a.split(b"boundary=")[1][:30] != b.split(b"boundary=")[1][:30]


def test_non_ascii_address_is_written_as_utf8() -> None:
    """RFC 6532 (formataddr raised for these, and the HTTP API answered 500)."""
    c = Composition(from_name="", from_email="jösé@shop.example",
                    to=[("Jöhn \"J\"", "jöhn@example.org")])
    raw = compose(c, message_id="<m@h>", date=WHEN)
    assert raw.startswith("From: jösé@shop.example\r\nTo: =?utf-8?".encode())
    assert "?= <jöhn@example.org>\r\n".encode() in raw
    slow = compose(dataclasses.replace(c, attachments=[Attachment("a.txt", "text/plain", b"x")]),
                   message_id="<m@h>", date=WHEN)
    assert "From: jösé@shop.example\r\n".encode() in slow
    assert "<jöhn@example.org>\r\n".encode() in slow
