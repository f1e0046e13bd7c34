"""The trouble policy: attempt results to recorded outcomes, suppressions and DSNs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom.delivery.classify import LocalError
from postroom.delivery.outcomes import (
    RetryPolicy,
    build_dsns,
    error_result,
    finish,
    reply_result,
    suppressed_result,
    suppression,
)
from postroom.model import Account, Claim, MessageRecord, RecipientStatus
from postroom.smtp.replies import reply

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base=60, cap=7200, expire=432000)


def claim(attempts: int = 0, age: float = 10, address: str = "a@x.test") -> Claim:
    return Claim(recipient_id=7, message_id="m1", account_id="acc", mail_from="s@y.test",
                 address=address, domain="x.test", attempts=attempts,
                 created_at=NOW - timedelta(seconds=age), lease_until=NOW)


def record(mail_from: str = "s@y.test") -> MessageRecord:
    return MessageRecord(id="m1", account_id="acc", mail_from=mail_from, header_from="s@y.test",
                         subject="Hi", message_id_header="", size=10, source="smtp",
                         client_ip="", options={}, created_at=NOW, not_before=None)


def test_delivered_deferred_bounced() -> None:
    ok = finish(reply_result(claim(), reply(250, "2.0.0", "Ok: queued as X"), "mx"), NOW, POLICY)
    assert ok.status is RecipientStatus.DELIVERED and ok.reply == "250 2.0.0 Ok: queued as X"
    assert ok.remote_host == "mx" and ok.attempt == 1
    later = finish(reply_result(claim(2), reply(451, "4.3.0", "busy"), "mx"), NOW, POLICY)
    assert later.status is RecipientStatus.DEFERRED
    assert later.next_attempt_at == NOW + timedelta(seconds=240)  # third attempt: 4 x base
    bounced = reply_result(claim(), reply(550, "5.1.1", "User unknown"), "mx")
    assert finish(bounced, NOW, POLICY).status is RecipientStatus.BOUNCED
    assert suppression(bounced) == ("acc", "a@x.test", "bounce")
    full = reply_result(claim(), reply(552, "5.2.2", "Mailbox full"), "mx")
    assert suppression(full) is None  # says nothing about the address


def test_a_named_wait_stretches_the_schedule() -> None:
    r = reply_result(claim(), reply(450, "4.2.0", "Greylisted, try again in 10 minutes"), "mx")
    assert finish(r, NOW, POLICY).next_attempt_at == NOW + timedelta(minutes=10)


def test_transient_failures_past_expiry_fail() -> None:
    r = error_result(claim(5, age=432001), "connection refused", kind=LocalError.CONNECTION)
    done = finish(r, NOW, POLICY)
    assert done.status is RecipientStatus.FAILED and done.data["expired"] is True
    assert "gave up" in (done.reply or "")


def test_dns_permanent_bounces_and_suppressed_fails() -> None:
    r = error_result(claim(), "Domain x.test does not exist (NXDOMAIN)", kind=LocalError.DNS,
                     permanent=True)
    assert finish(r, NOW, POLICY).status is RecipientStatus.BOUNCED
    s = finish(suppressed_result(claim()), NOW, POLICY)
    assert s.status is RecipientStatus.FAILED and s.data["suppressed"] is True


def test_dsn_goes_to_the_bounce_address_and_never_for_a_null_sender() -> None:
    c = claim()
    bounced = finish(reply_result(c, reply(550, "5.1.1", "User unknown"), "mx"), NOW, POLICY)
    account = Account(id="acc", name="a", bounce_address="b@bounce.test")
    raw = b"From: s@y.test\r\nSubject: Hi\r\n\r\nbody\r\n"
    [dsn] = build_dsns([(c, bounced, "mx")], {"m1": (record(), raw, account)},
                       hostname="pr.test", now=NOW)
    assert dsn.mail_from == "" and dsn.recipients == ("b@bounce.test",) and dsn.source == "dsn"
    assert b"Status: 5.1.1" in dsn.raw and b"Subject: Hi" in dsn.raw and b"body" not in dsn.raw
    [to_sender] = build_dsns([(c, bounced, "mx")], {"m1": (record(), raw, None)},
                             hostname="pr.test", now=NOW)
    assert to_sender.recipients == ("s@y.test",)
    assert build_dsns([(c, bounced, "mx")], {"m1": (record(""), raw, account)},
                      hostname="pr.test", now=NOW) == []
