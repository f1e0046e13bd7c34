"""parse_arf on feedback reports shaped like the ones mailbox providers send."""

from __future__ import annotations

import pytest

from postroom.delivery import verp
from postroom.events.arf import Complaint, parse_arf

SECRET = b"s" * 32
MID = "01m81y4tndry7c2qp17h9tv73p"
VERP = verp.encode("bounces@bounce.example", MID, 42, SECRET)
B = "part1_13d.2e68ed54_boundary"


def report(fields: str, original: str, *, original_type: str = "message/rfc822",
           report_type: str = "feedback-report") -> bytes:
    return (
        "From: <staff@fbl.example.com>\r\nDate: Thu, 8 Mar 2026 17:40:36 -0400\r\n"
        "Subject: FW: Weekly news\r\nTo: <fbl@bounce.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type};\r\n\tboundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain; charset=US-ASCII\r\n\r\n"
        "This is an email abuse report for a message received from IP 192.0.2.1.\r\n\r\n"
        f"--{B}\r\nContent-Type: message/feedback-report\r\n\r\n{fields}\r\n"
        f"--{B}\r\nContent-Type: {original_type}\r\nContent-Disposition: inline\r\n\r\n"
        f"{original}\r\n--{B}--\r\n"
    ).encode()


ORIGINAL = (
    f"Return-Path: <{VERP}>\r\nReceived: from mx.sender.example by mx.fbl.example; "
    "Thu, 8 Mar 2026 14:00:00 -0400\r\nFrom: News <news@sender.example>\r\n"
    "To: <reader@yahoo.example>\r\nSubject: Weekly news\r\n"
    "Message-ID: <weekly-7@sender.example>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain\r\n\r\nHello\r\n"
)
RFC5965 = report(
    "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
    f"Original-Mail-From: <{VERP}>\r\nOriginal-Rcpt-To: <Reader@yahoo.example>\r\n"
    "Arrival-Date: Thu, 8 Mar 2026 14:00:00 -0400\r\nReporting-MTA: dns; mx.fbl.example\r\n"
    "Source-IP: 192.0.2.1\r\nReported-Domain: sender.example\r\n", ORIGINAL)
# AOL-style: recipient redacted everywhere, no Original-Mail-From, Postroom's own Message-ID.
REDACTED = report(
    "Feedback-Type: abuse\r\nUser-Agent: AOL SComp\r\nVersion: 0.1\r\n"
    "Received-Date: Thu, 8 Mar 2026 14:00:00 -0400\r\n",
    f"From: news@sender.example\r\nTo: redacted\r\nSubject: hi\r\n"
    f"Message-ID: <{MID}@postroom.example>\r\n\r\nbody\r\n")
# Microsoft JMRP-style: the recipient only in X-HmXmrOriginalRecipient, VERP in Return-Path.
JMRP = report(
    "Feedback-Type: abuse\r\nUser-Agent: Hotmail FBL\r\nVersion: 0.1\r\n",
    f"X-HmXmrOriginalRecipient: <someone@outlook.example>\r\nReturn-Path: {VERP}\r\n"
    "From: news@sender.example\r\nTo: undisclosed-recipients:;\r\nSubject: x\r\n\r\nbody\r\n")
HEADERS_ONLY = report(
    "Feedback-Type: fraud\r\nUser-Agent: X/1\r\nVersion: 1\r\n"
    "Original-Rcpt-To: a@b.example\r\n",
    f"Return-Path: <{VERP}>\r\nMessage-ID: <z@sender.example>\r\nTo: a@b.example\r\n",
    original_type="text/rfc822-headers")


def checked(address: str) -> tuple[str, int] | None:
    return verp.decode(address, SECRET)


@pytest.mark.parametrize(("raw", "want"), [
    (RFC5965, {"feedback_type": "abuse", "message_id": MID, "recipient_id": 42,
               "recipient": "reader@yahoo.example", "source_ip": "192.0.2.1",
               "user_agent": "SomeGenerator/1.0", "reported_domain": "sender.example",
               "message_id_header": "<weekly-7@sender.example>", "verified": True}),
    (REDACTED, {"message_id": MID, "recipient": None, "recipient_id": None,
                "verified": False, "user_agent": "AOL SComp"}),
    (JMRP, {"message_id": MID, "recipient_id": 42, "recipient": "someone@outlook.example",
            "return_path": VERP}),
    (HEADERS_ONLY, {"feedback_type": "fraud", "message_id": MID, "recipient": "a@b.example"}),
], ids=["rfc5965", "redacted", "jmrp", "headers-only"])
def test_complaints(raw: bytes, want: dict[str, object]) -> None:
    got = parse_arf(raw, verify=checked)
    assert isinstance(got, Complaint)
    for key, value in want.items():
        assert getattr(got, key) == value, key


def test_without_verify_the_verp_ids_are_read_but_not_trusted() -> None:
    got = parse_arf(RFC5965)
    assert got is not None and got.message_id == MID and got.recipient_id == 42
    assert got.verified is False


def test_a_forged_verp_token_is_ignored_and_a_foreign_message_id_is_only_reported() -> None:
    local, _, domain = VERP.partition("@")
    forged = RFC5965.replace(VERP.encode(), f"{local[:-5]}aaaaa@{domain}".encode())
    got = parse_arf(forged, verify=checked)
    assert got is not None and got.message_id is None and got.recipient_id is None
    assert got.message_id_header == "<weekly-7@sender.example>"
    assert got.data()["feedback_type"] == "abuse" and "message_id" not in got.data()


def test_own_message_id_only_from_our_hostname_when_given() -> None:
    assert parse_arf(REDACTED, hostname="postroom.example").message_id == MID  # type: ignore[union-attr]
    assert parse_arf(REDACTED, hostname="other.example").message_id is None  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", [
    report("Feedback-Type: auth-failure\r\nVersion: 1\r\n", ORIGINAL),
    report("Feedback-Type: not-spam\r\nVersion: 1\r\n", ORIGINAL),
    report("Feedback-Type: abuse\r\n", ORIGINAL, report_type="delivery-status"),
    b"From: a@b\r\nSubject: not a report\r\n\r\nhello\r\n",
    b"",
], ids=["dmarc-forensic", "not-spam", "dsn", "plain-mail", "empty"])
def test_not_complaints(raw: bytes) -> None:
    assert parse_arf(raw) is None
