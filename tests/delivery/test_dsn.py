"""DSNs are built as bytes and checked by parsing them back with the standard `email` package."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import Message

import pytest

from postroom.delivery.dsn import FailedRecipient, build_dsn, dsn_address

ORIGINAL = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: nobody@example.org\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <orig-1@example.com>\r\n"
    b"\r\n"
    b"SECRET BODY CONTENT\r\n"
)
ARRIVED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
GMAIL_551 = (
    "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. Learn more "
    "at https://support.google.com/mail/?p=NoSuchUser - gsmtp"
)


def build(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "reporting_mta": "mail.postroom.test",
        "original_envelope_from": "bounces@example.com",
        "original_message_headers": ORIGINAL,
        "failed": [
            FailedRecipient("nobody@example.org", "5.1.1", GMAIL_551, remote_mta="mx.example.org"),
            FailedRecipient("full@example.org", "5.2.2", "552 5.2.2 Mailbox full"),
        ],
        "to_address": "bounces@example.com",
        "from_address": "MAILER-DAEMON@mail.postroom.test",
        "arrival_date": ARRIVED,
    }
    args.update(overrides)
    return build_dsn(**args)  # type: ignore[arg-type]


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def test_structure_is_multipart_report() -> None:
    raw = build()
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["To"] == "<bounces@example.com>"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mail.postroom.test>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Message-ID"].endswith("@mail.postroom.test>")
    assert msg["Date"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert msg.defects == []


def test_lines_end_in_crlf_and_stay_short() -> None:
    raw = build()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_delivery_status_fields() -> None:
    status = parse(build()).get_payload()[1]
    per_message, first, second = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.postroom.test"
    assert per_message["Arrival-Date"] == "Mon, 06 May 2024 07:08:09 +0000"
    assert first["Final-Recipient"] == "rfc822; nobody@example.org"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mx.example.org"
    diagnostic = " ".join(first["Diagnostic-Code"].split())
    assert diagnostic == " ".join(GMAIL_551.split())
    assert second["Final-Recipient"] == "rfc822; full@example.org"
    assert second["Status"] == "5.2.2"
    assert second["Remote-MTA"] is None
    assert second["Diagnostic-Code"] == "smtp; 552 5.2.2 Mailbox full"  # type added


def test_long_diagnostics_are_folded() -> None:
    raw = build()
    block = raw.split(b"Diagnostic-Code:")[1].split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in (b"Diagnostic-Code:" + block).split(b"\r\n"))


def test_original_headers_only_never_the_body() -> None:
    raw = build()
    headers_part = parse(raw).get_payload()[2]
    text = headers_part.get_payload()
    assert "Subject: Quarterly report" in text
    assert "Message-ID: <orig-1@example.com>" in text
    assert b"SECRET BODY CONTENT" not in raw


def test_human_part_names_each_recipient() -> None:
    text = " ".join(parse(build()).get_payload()[0].get_payload().split())
    assert "<nobody@example.org>: failed (5.1.1)" in text
    assert "Remote server: mx.example.org" in text
    assert "The email account that you tried to reach does not exist" in text
    assert "mail.postroom.test" in text


def test_optional_fields() -> None:
    raw = build(
        original_envelope_id="ENV-42",
        failed=[
            FailedRecipient(
                "late@example.org",
                "4.4.1",
                "smtp; 421 4.4.1 No answer",
                action="delayed",
                original_recipient="Late@Example.org",
                last_attempt=ARRIVED,
                will_retry_until=datetime(2024, 5, 11, tzinfo=UTC),
            )
        ],
        message_id="<dsn-1@mail.postroom.test>",
    )
    msg = parse(raw)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert msg["Message-ID"] == "<dsn-1@mail.postroom.test>"
    per_message, rcpt = msg.get_payload()[1].get_payload()
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert rcpt["Action"] == "delayed"
    assert rcpt["Original-Recipient"] == "rfc822; Late@Example.org"
    assert rcpt["Will-Retry-Until"] == "Sat, 11 May 2024 00:00:00 +0000"
    assert rcpt["Last-Attempt-Date"]
    assert "will keep trying" in msg.get_payload()[0].get_payload()


def test_non_ascii_addresses_use_rfc6533_escapes() -> None:
    assert dsn_address("a@b.test") == "rfc822; a@b.test"
    assert dsn_address("josé@exämple.test") == "utf-8; jos\\x{E9}@ex\\x{E4}mple.test"
    raw = build(failed=[FailedRecipient("josé@example.org", "5.1.1", "550 5.1.1 no")])
    msg = parse(raw)
    rcpt = msg.get_payload()[1].get_payload()[1]
    assert rcpt["Final-Recipient"] == "utf-8; jos\\x{E9}@example.org"
    human = msg.get_payload()[0]
    assert human["Content-Transfer-Encoding"] == "quoted-printable"
    assert "josé@example.org" in human.get_payload(decode=True).decode("utf-8")


def test_8bit_original_headers_are_declared() -> None:
    raw = build(original_message_headers="Subject: Café\r\n\r\nbody".encode())
    part = parse(raw).get_payload()[2]
    assert part["Content-Transfer-Encoding"] == "8bit"


def test_original_with_bare_lf_is_normalised() -> None:
    raw = build(original_message_headers=b"Subject: x\nFrom: a@b.test\n\nbody\n")
    assert b"Subject: x\r\nFrom: a@b.test\r\n" in raw
    assert b"\nbody" not in raw


def test_needs_a_recipient() -> None:
    with pytest.raises(ValueError):
        build(failed=[])
