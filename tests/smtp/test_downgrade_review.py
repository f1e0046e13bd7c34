"""7-bit downgrades for peers without 8BITMIME (found by a review; both failed before the fix):
an 8-bit message without MIME got a transfer encoding but no MIME header, so readers saw
`Caf=C3=A9`; an 8-bit binary part lost its CRs on the way to base64."""

from __future__ import annotations

import asyncio
import email
import email.policy

import pytest

from postroom.smtp.client import open_session
from postroom.smtp.client_message import NotConvertible, prepare_message
from support.smtp_sinks import SmtpSink


def sent_to_7bit_peer(msg: bytes) -> bytes:
    """What a receiver without 8BITMIME (nor SMTPUTF8) gets when our client sends `msg`."""
    with SmtpSink(hide_extensions=["8BITMIME"], smtputf8=False) as sink:
        async def main() -> None:
            async with await open_session("127.0.0.1", sink.port, helo_name="c.test",
                                          tls="off") as s:
                await s.send("a@x.test", ["b@y.test"], msg)
        asyncio.run(main())
        return bytes(sink.wait_for_messages(1)[0].data)


def test_non_mime_8bit_to_7bit_peer() -> None:
    msg = "From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nCaf\u00e9 cr\u00e8me\r\n".encode()
    got = sent_to_7bit_peer(msg)
    parsed = email.message_from_bytes(got, policy=email.policy.default)
    assert "Café" in parsed.get_content()


def test_8bit_attachment_keeps_its_bytes() -> None:
    msg = (b"From: a@x.test\r\nTo: b@y.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
           b"--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n--BB\r\nContent-Type: application/x-data\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nline1 \xff\r\nline2\r\n--BB--\r\n")
    def att(data: bytes) -> bytes:
        m = email.message_from_bytes(data, policy=email.policy.default)
        return next(p.get_payload(decode=True) for p in m.walk()
                    if p.get_content_type() == "application/x-data")
    got = sent_to_7bit_peer(msg)
    assert att(got) == att(msg)


def test_non_mime_8bit_in_an_unknown_charset_is_refused() -> None:
    msg = b"From: a@x.test\r\nSubject: hi\r\n\r\nCaf\xe9\r\n"  # Latin-1, not UTF-8
    with pytest.raises(NotConvertible):
        prepare_message(msg, eight_bit_mime=False, smtputf8=False)
