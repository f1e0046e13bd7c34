"""Reply classification against replies real receivers send (texts as seen in their bounces)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.classify import (
    Category,
    LocalError,
    Outcome,
    OutcomeKind,
    classify_error,
    classify_reply,
)
from postroom.smtp.replies import Reply, parse_enhanced

C = Category
DELIVERED, DEFERRED, BOUNCED = OutcomeKind.DELIVERED, OutcomeKind.DEFERRED, OutcomeKind.BOUNCED


def parse(line: str) -> Reply:
    """ "550-5.1.1 text" / "550 5.1.1 text" / "554 text" -> Reply, as the client would build it."""
    code = int(line[:3])
    enhanced, text = parse_enhanced(code, line[4:])
    return Reply(code, enhanced, (text,))


CASES: list[tuple[str, str, OutcomeKind, bool, Category]] = [
    # --- delivered
    ("postfix", "250 2.0.0 Ok: queued as 4ZxYk11Xyz", DELIVERED, False, C.OTHER),
    (
        "gmail",
        "250 2.0.0 OK  1700000000 a1-20020a05600c00c100b0040e3a1b2c3dsi123 - gsmtp",
        DELIVERED,
        False,
        C.OTHER,
    ),
    # --- invalid recipients (hard)
    (
        "gmail",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser - gsmtp",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "gmail",
        "550-5.2.1 The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser - gsmtp",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "outlook",
        "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302) [AM4PEPF00025F97.EURPRD83.prod.outlook.com]",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "outlook",
        "550 5.4.1 Recipient address rejected: Access denied. For more information see https://aka.ms/EXOSmtpErrors [DB3EUR04FT012.eop-eur04.prod.protection.outlook.com]",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "exchange",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "yahoo",
        "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta4012.mail.gq1.yahoo.com",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "yahoo",
        "552 1 Requested mail action aborted, mailbox not found",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "yahoo",
        "554 delivery error: dd Sorry your message to x@yahoo.com cannot be delivered. This mailbox is disabled (554.30). - mta1122.mail.ne1.yahoo.com",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "postfix",
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "postfix",
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    ("exim", "550 Unrouteable address", BOUNCED, True, C.INVALID_RECIPIENT),
    ("exim", "550 No Such User Here", BOUNCED, True, C.INVALID_RECIPIENT),
    (
        "generic",
        "551 User not local; please try <forward@example.org>",
        BOUNCED,
        True,
        C.INVALID_RECIPIENT,
    ),
    (
        "postfix",
        "450 4.1.1 <x@example.org>: Recipient address rejected: unverified address: host mx.example.org said: 550 5.1.1 User unknown",
        DEFERRED,
        False,
        C.INVALID_RECIPIENT,
    ),
    # --- mailbox full (soft)
    (
        "gmail",
        "552-5.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm - gsmtp",
        BOUNCED,
        False,
        C.MAILBOX_FULL,
    ),
    (
        "gmail",
        "452-4.2.2 The recipient's inbox is out of storage space. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
        DEFERRED,
        False,
        C.MAILBOX_FULL,
    ),
    (
        "exchange",
        "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
        BOUNCED,
        False,
        C.MAILBOX_FULL,
    ),
    (
        "dovecot",
        "552 5.2.2 <x@example.org>: Quota exceeded (mailbox for user is full)",
        BOUNCED,
        False,
        C.MAILBOX_FULL,
    ),
    ("dovecot", "452 4.2.2 Mailbox is full", DEFERRED, False, C.MAILBOX_FULL),
    ("generic", "550 Mailbox full", BOUNCED, False, C.MAILBOX_FULL),
    # --- too large (soft)
    (
        "gmail",
        "552-5.3.4 Your message exceeded Google's message size limits. Please visit https://support.google.com/mail/?p=MaxSizeError to view our size guidelines. - gsmtp",
        BOUNCED,
        False,
        C.MESSAGE_TOO_LARGE,
    ),
    (
        "outlook",
        "552 5.3.4 Message size exceeds fixed maximum message size",
        BOUNCED,
        False,
        C.MESSAGE_TOO_LARGE,
    ),
    ("postfix", "552 5.3.4 Message size exceeds fixed limit", BOUNCED, False, C.MESSAGE_TOO_LARGE),
    ("yahoo", "552 Message size exceeds the limit", BOUNCED, False, C.MESSAGE_TOO_LARGE),
    ("exim", "552 Message too large", BOUNCED, False, C.MESSAGE_TOO_LARGE),
    # --- policy (soft)
    (
        "gmail",
        "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked. - gsmtp",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "gmail",
        "421-4.7.0 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. - gsmtp",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "gmail",
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. - gsmtp",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "gmail",
        "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail from your domain. - gsmtp",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "gmail",
        "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. - gsmtp",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "outlook",
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "outlook",
        "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714) [Name=Protocol Filter Agent][AGT=PFA]",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "outlook",
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "yahoo",
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "yahoo",
        "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "yahoo",
        "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "postfix",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "postfix",
        "450 4.2.0 <x@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    ("postfix", "454 4.7.1 <x@example.org>: Relay access denied", DEFERRED, False, C.POLICY_BLOCK),
    (
        "postfix",
        "550 5.1.0 <bounce@sender.test>: Sender address rejected: Domain not found",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "proofpoint",
        "553 5.3.0 flpd575 DNSBL:RBL 521< 192.0.2.1 >_is_blocked.For assistance forward this error to abuse_rbl@abuse-att.net",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "mimecast",
        "550 Rejected by header based Anti-Spoofing policy",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "generic",
        "554 5.7.5 Permanent error evaluating DMARC policy",
        BOUNCED,
        False,
        C.POLICY_BLOCK,
    ),
    (
        "generic",
        "421 Too many concurrent SMTP connections from this IP address; please try again later.",
        DEFERRED,
        False,
        C.POLICY_BLOCK,
    ),
    # --- TLS, DNS, timeouts, connections
    ("postfix", "530 5.7.0 Must issue a STARTTLS command first", BOUNCED, False, C.TLS),
    ("generic", "523 5.7.10 Encryption Needed", BOUNCED, False, C.TLS),
    (
        "postfix",
        "450 4.4.4 Host or domain name not found. Name service error for name=example.invalid type=MX",
        DEFERRED,
        False,
        C.DNS,
    ),
    ("generic", "451 4.4.2 Timeout waiting for data from client", DEFERRED, False, C.TIMEOUT),
    ("generic", "421 4.4.2 mx.example.org Error: timeout exceeded", DEFERRED, False, C.TIMEOUT),
    (
        "generic",
        "421 Service not available, closing transmission channel",
        DEFERRED,
        False,
        C.CONNECTION,
    ),
    # --- other
    ("postfix", "452 4.3.1 Insufficient system storage", DEFERRED, False, C.OTHER),
    ("generic", "451 4.3.0 Temporary local problem - please try later", DEFERRED, False, C.OTHER),
    ("generic", "550 Requested action not taken", BOUNCED, True, C.OTHER),
    ("generic", "554 5.6.0 Message is not RFC 5322 compliant", BOUNCED, True, C.OTHER),
]


@pytest.mark.parametrize(
    ("source", "line", "kind", "hard", "category"),
    CASES,
    ids=[f"{c[0]}-{c[1][:16]}" for c in CASES],
)
def test_real_replies(
    source: str, line: str, kind: OutcomeKind, hard: bool, category: Category
) -> None:
    outcome = classify_reply(parse(line))
    assert (outcome.kind, outcome.hard, outcome.category) == (kind, hard, category), line


def test_status_comes_from_the_enhanced_code_or_the_class() -> None:
    assert classify_reply(parse("550 5.1.1 User unknown")).status == "5.1.1"
    assert classify_reply(parse("550 No Such User Here")).status == "5.0.0"
    assert classify_reply(parse("421 Service not available")).status == "4.0.0"
    assert classify_reply(parse("250 Ok")).status == "2.0.0"


def test_enhanced_code_found_in_text_when_not_parsed() -> None:
    reply = Reply(550, None, ("5.1.1 <x@y.test>: user unknown",))
    assert classify_reply(reply).status == "5.1.1"
    mismatched = Reply(450, None, ("5.1.1 user unknown",))  # class does not match: ignored
    assert classify_reply(mismatched).status == "4.0.0"


def test_multiline_replies_are_read_whole() -> None:
    reply = Reply(
        550, "5.7.1", ("[192.0.2.1] Our system has detected that", "this message is spam")
    )
    assert classify_reply(reply).category is C.POLICY_BLOCK


@pytest.mark.parametrize(
    ("kind", "permanent", "expected"),
    [
        (LocalError.DNS, True, Outcome(BOUNCED, True, C.DNS, "5.1.2")),
        (LocalError.DNS, False, Outcome(DEFERRED, False, C.DNS, "4.4.3")),
        ("tls", False, Outcome(DEFERRED, False, C.TLS, "4.7.5")),
        ("timeout", False, Outcome(DEFERRED, False, C.TIMEOUT, "4.4.2")),
        ("connection", False, Outcome(DEFERRED, False, C.CONNECTION, "4.4.1")),
        ("connection", True, Outcome(BOUNCED, False, C.CONNECTION, "5.4.1")),
    ],
)
def test_local_errors(kind: str, permanent: bool, expected: Outcome) -> None:
    assert classify_error(kind, permanent=permanent) == expected


def test_local_error_status_override_and_unknown_kind() -> None:
    null_mx = classify_error("dns", permanent=True, status="5.1.10")
    assert null_mx == Outcome(BOUNCED, True, C.DNS, "5.1.10")
    with pytest.raises(ValueError):
        classify_error("cosmic-rays")


@given(
    st.integers(min_value=200, max_value=599),
    st.one_of(st.none(), st.from_regex(r"\A[245]\.\d{1,3}\.\d{1,3}\Z")),
    st.lists(st.text(max_size=200), max_size=3),
)
def test_never_raises_and_follows_the_code_class(
    code: int, enhanced: str | None, lines: list[str]
) -> None:
    outcome = classify_reply(Reply(code, enhanced, tuple(lines)))
    assert outcome.category in Category
    if code < 300:
        assert outcome.kind is DELIVERED
    elif code >= 500:
        assert outcome.kind is BOUNCED
    else:
        assert outcome.kind is DEFERRED
        assert not outcome.hard
