"""Bounce reports as real MTAs write them, and what is no bounce although it reaches a return
path: vacation notices and people's answers (a "555-0100" or "5.1.2" in them once bounced, and
suppressed, the recipient who wrote them)."""

from __future__ import annotations

from postroom.inbound.reports import failures

VERP = "bounces+abc@bounce.test"

POSTFIX_DSN = f"""From: MAILER-DAEMON@mx.rcpt.test (Mail Delivery System)\r
To: {VERP}\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r
\r
--B\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.rcpt.test\r
\r
Final-Recipient: rfc822; gone@rcpt.test\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <gone@rcpt.test>: Recipient address rejected\r
--B--\r
""".encode()

EXIM = f"""From: Mail Delivery System <Mailer-Daemon@mx.rcpt.test>\r
To: {VERP}\r
Subject: Mail delivery failed: returning message to sender\r
Auto-Submitted: auto-replied\r
\r
This message was created automatically by mail delivery software.\r
\r
A message that you sent could not be delivered to one or more of its\r
recipients. This is a permanent error. The following address(es) failed:\r
\r
  gone@rcpt.test\r
    SMTP error from remote mail server after RCPT TO:<gone@rcpt.test>:\r
    550 5.1.1 User unknown\r
\r
------ This is a copy of the message, including all the headers. ------\r
\r
Subject: Spring sale\r
\r
Call us on 555-0100.\r
""".encode()

QMAIL = f"""From: MAILER-DAEMON@mx.rcpt.test\r
To: {VERP}\r
Subject: failure notice\r
\r
Hi. This is the qmail-send program at mx.rcpt.test.\r
I'm afraid I wasn't able to deliver your message to the following addresses.\r
This is a permanent error; I've given up. Sorry it didn't work out.\r
\r
<gone@rcpt.test>:\r
Sorry, no mailbox here by that name. (#5.1.1)\r
\r
--- Below this line is a copy of the message.\r
""".encode()

VACATION = f"""From: Carol <carol@rcpt.test>\r
To: {VERP}\r
Subject: Out of Office: Spring sale\r
Auto-Submitted: auto-replied\r
\r
I am away until Monday. For urgent matters call 555-0100 or see section 5.1.2\r
of the handbook.\r
""".encode()

PERSON = f"""From: Dan <dan@rcpt.test>\r
To: {VERP}\r
Subject: Re: Spring sale\r
\r
Is the 550 EUR offer still valid? Policy 5.7.1 says so.\r
""".encode()

FORWARDED = f"""From: Erin <erin@rcpt.test>\r
To: {VERP}\r
Subject: Fwd: your mail\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="F"\r
\r
--F\r
Content-Type: text/plain\r
\r
See below.\r
--F\r
Content-Type: message/rfc822\r
\r
From: MAILER-DAEMON@elsewhere.test\r
Subject: Undelivered Mail\r
\r
550 5.1.1 nobody here\r
--F--\r
""".encode()

DAEMON_TEXT = f"""From: postmaster@mx.rcpt.test\r
To: {VERP}\r
Subject: Delivery failure\r
\r
Your message was rejected: 554 5.7.1 Message refused by policy.\r
""".encode()


def test_rfc3464_dsn() -> None:
    [f] = failures(POSTFIX_DSN)
    assert (f.recipient, f.status, f.hard) == ("gone@rcpt.test", "5.1.1", True)


def test_legacy_bounces_through_flufl_bounce() -> None:
    for raw in (EXIM, QMAIL):
        [f] = failures(raw)
        assert f.recipient == "gone@rcpt.test" and f.status == "5.1.1" and f.hard, (raw[:80], f)


def test_auto_replies_and_answers_are_no_bounces() -> None:
    assert failures(VACATION) == []
    assert failures(PERSON) == []
    assert failures(FORWARDED) == []


def test_a_daemon_text_only_bounce_still_counts() -> None:
    [f] = failures(DAEMON_TEXT)
    assert (f.recipient, f.status, f.hard) == (None, "5.7.1", False)
