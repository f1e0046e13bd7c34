"""Mail back to Postroom: an asynchronous bounce to a VERP return path, a mailto unsubscribe,
and no open relay for unauthenticated senders."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest
from tests.delivery.harness import dns_world, start_server, submit, wait_statuses

from support.smtp_sinks import SmtpSink

pytestmark = pytest.mark.slow

DSN = """From: MAILER-DAEMON@mx.rcpt.test\r
To: {verp}\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r
\r
--B\r
Content-Type: text/plain\r
\r
Your message could not be delivered.\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.rcpt.test\r
\r
Final-Recipient: rfc822; late@rcpt.test\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <late@rcpt.test>: Recipient address rejected: User unknown\r
--B--\r
"""


def test_async_bounce_and_mailto_unsubscribe(tmp_path: Path) -> None:
    from postroom.delivery import verp
    from postroom.store.api import Store

    with dns_world() as dns, SmtpSink() as sink:
        server = start_server(tmp_path, dns, sink.port, bounce=True)
        try:
            mid = submit(server, ["late@rcpt.test", "reader@rcpt.test"])
            wait_statuses(server, mid, {"late@rcpt.test": "delivered",
                                        "reader@rcpt.test": "delivered"})
            got = sink.wait_for_messages(2)
            returns = {m.rcpt_tos[0]: m.mail_from for m in got}
            late_verp = returns["late@rcpt.test"]
            assert late_verp.startswith("bounces+") and late_verp.endswith("@bounce.test")
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("mx.rcpt.test")
                assert c.mail("<>")[0] == 250
                assert c.rcpt("someone@elsewhere.test")[0] == 550  # never an open relay
                forged = late_verp[:-len("@bounce.test")][:-3] + "aaa@bounce.test"
                assert c.rcpt(forged)[0] == 550  # a VERP address with a bad signature
                assert c.rcpt(late_verp)[0] == 250
                code, text = c.data(DSN.format(verp=late_verp).encode())
                assert code == 250, text
            shown = wait_statuses(server, mid, {"late@rcpt.test": "bounced"})
            bounced = [e for e in shown["events"] if e["type"] == "bounced"]
            assert bounced[0]["data"]["async"] is True and bounced[0]["data"]["status"] == "5.1.1"
            # the address is suppressed: a later RCPT for it is refused
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("x")
                c.mail("news@sender.test")
                deadline = time.monotonic() + 5
                while (r := c.rcpt("late@rcpt.test"))[0] == 250 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert r == (550, b"5.7.1 Recipient <late@rcpt.test> not allowed")
            # mailto unsubscribe (the List-Unsubscribe mailto form) for the other recipient
            store = Store(server.storage_url)
            secret = store.get_or_create_secret(verp.SECRET_NAME)
            rid = next(r.id for r in store.get_message(mid).recipients
                       if r.address == "reader@rcpt.test")
            store.close()
            address = verp.encode("unsubscribe@bounce.test", mid, rid, secret)
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("x")
                c.mail("<>")
                assert c.rcpt(address)[0] == 250
                assert c.data(b"Subject: unsubscribe\r\n\r\n")[0] == 250
            events = server.message(mid)["events"]
            assert any(e["type"] == "unsubscribed" and e["recipient"] == "reader@rcpt.test"
                       for e in events)
        finally:
            server.stop()


def test_unauthenticated_senders_still_need_auth(tmp_path: Path) -> None:
    with dns_world() as dns, SmtpSink() as sink:
        server = start_server(tmp_path, dns, sink.port, account=False)
        try:
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("x")
                assert c.mail("someone@example.org") == (530, b"5.7.0 Authentication required")
        finally:
            server.stop()


ARF = """From: feedback@fbl.example.net\r
To: fbl@postroom.test\r
Subject: FW: Spring sale\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report; boundary="P"\r
\r
--P\r
Content-Type: text/plain\r
\r
This is an email abuse report for an email message received from IP 127.0.0.1.\r
--P\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: SomeFBL/1.0\r
Version: 1\r
Original-Mail-From: <{verp}>\r
Original-Rcpt-To: <{rcpt}>\r
Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r
Source-IP: 127.0.0.1\r
\r
--P\r
Content-Type: text/rfc822-headers\r
\r
From: Sender <news@sender.test>\r
To: {rcpt}\r
Subject: Spring sale\r
Message-ID: <Hello@sender.test>\r
\r
--P--\r
"""


def test_arf_complaint_suppresses_the_address(tmp_path: Path) -> None:
    with dns_world() as dns, SmtpSink() as sink:
        server = start_server(tmp_path, dns, sink.port, feedback=True, bounce=True)
        try:
            mid = submit(server, ["angry@rcpt.test"])
            wait_statuses(server, mid, {"angry@rcpt.test": "delivered"})
            [got] = sink.wait_for_messages(1)
            # the provider's report carries the VERP return path the copy went out with
            report = ARF.format(rcpt="angry@rcpt.test", verp=got.mail_from)
            # a feedback loop sends from a real address: the inbound listener takes it
            with smtplib.SMTP("127.0.0.1", server.inbound, timeout=10) as c:
                c.ehlo("fbl.example.net")
                assert c.mail("feedback@fbl.example.net")[0] == 250
                assert c.rcpt("victim@elsewhere.test")[0] == 550
                assert c.rcpt("fbl@postroom.test")[0] == 250
                assert c.data(report.encode())[0] == 250
            events = server.message(mid)["events"]
            complained = [e for e in events if e["type"] == "complained"]
            assert complained and complained[0]["recipient"] == "angry@rcpt.test"
            from postroom.store.api import Store

            store = Store(server.storage_url)
            try:
                account = store.get_account("sender")
                assert store.suppressed_among(account.id, ["angry@rcpt.test"])
            finally:
                store.close()
        finally:
            server.stop()
