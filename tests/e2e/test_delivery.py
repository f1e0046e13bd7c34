"""Delivery end to end: smtplib -> `postroom serve` -> MX from a loopback DNS -> a real receiver."""

from __future__ import annotations

import email
import smtplib
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from tests.delivery.harness import (
    BOUNCE_ADDRESS,
    dns_world,
    message_bytes,
    start_server,
    submit,
    wait_statuses,
    wait_until,
)

from support.smtp_sinks import SmtpSink, WireRecorder

pytestmark = pytest.mark.slow


def test_delivered_through_mx_with_received_and_valid_dkim(tmp_path: Path) -> None:
    with dns_world() as dns, SmtpSink() as sink:
        server = start_server(tmp_path, dns, sink.port, dkim=True)
        try:
            sent = message_bytes("Quarterly report", "Numbers inside.\r\n.leading dot\r\n")
            mid = submit(server, ["a@rcpt.test", "b@rcpt.test"], sent)
            shown = wait_statuses(server, mid, {"a@rcpt.test": "delivered",
                                                "b@rcpt.test": "delivered"})
        finally:
            server.stop()
        [got] = sink.wait_for_messages(1)  # both recipients in one transaction
        assert sorted(got.rcpt_tos) == ["a@rcpt.test", "b@rcpt.test"]
        assert got.mail_from == "news@sender.test"
        head = got.data.partition(b"DKIM-Signature:")[0]
        assert head.startswith(b"Received: ") and b"by postroom.test (Postroom)" in head
        assert got.data.endswith(sent.split(b"\r\n\r\n", 1)[1])
        parsed = email.message_from_bytes(got.data)
        assert parsed["Subject"] == "Quarterly report"
        assert "d=sender.test" in parsed["DKIM-Signature"].replace("\r\n", "").replace(" ", "")
        assert dkim.verify(got.data, dnsfunc=dns.dnsfunc), "DKIM signature does not verify"
        for r in shown["recipients"]:
            assert r["remote_host"] == "mx1.rcpt.test"
            assert r["last_reply"].startswith("250 ")
        delivered = [e for e in shown["events"] if e["type"] == "delivered"]
        assert len(delivered) == 2 and all(e["attempt"] == 1 for e in delivered)
        text = server.cli("messages", "show", mid).stdout
        assert "delivered" in text and "mx1.rcpt.test" in text and "250 2.0.0" in text


def test_451_twice_then_delivered_on_the_third_try(tmp_path: Path) -> None:
    with dns_world() as dns, SmtpSink(data_replies=["451 4.3.0 Try again later"] * 2) as sink:
        server = start_server(tmp_path, dns, sink.port, retry_base_seconds=0.2)
        try:
            mid = submit(server, ["grey@rcpt.test"])
            shown = wait_statuses(server, mid, {"grey@rcpt.test": "delivered"})
        finally:
            server.stop()
        assert len(sink.wait_for_messages(1)) == 1
        kinds = [(e["type"], e["attempt"]) for e in shown["events"]]
        assert kinds == [("queued", None), ("deferred", 1), ("deferred", 2), ("delivered", 3)]
        assert shown["recipients"][0]["attempts"] == 3


def test_550_for_one_of_three_bounces_sends_a_dsn_and_suppresses(tmp_path: Path) -> None:
    from postroom.delivery import verp
    from postroom.store.api import Store

    with dns_world() as dns, SmtpSink(rcpt_replies={
        "bad@rcpt.test": "550 5.1.1 <bad@rcpt.test>: Recipient address rejected: User unknown"
    }) as sink:
        server = start_server(tmp_path, dns, sink.port, bounce=True)
        try:
            rcpts = ["good1@rcpt.test", "bad@rcpt.test", "good2@other.test"]
            mid = submit(server, rcpts)
            shown = wait_statuses(server, mid, {"good1@rcpt.test": "delivered",
                                                "bad@rcpt.test": "bounced",
                                                "good2@other.test": "delivered"})
            messages = sink.wait_for_messages(3, timeout=15)  # two copies and the DSN
            # the suppression reaches the ingress cache within about a second
            def refused() -> bool:
                with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                    c.ehlo("tester")
                    c.mail("news@sender.test")
                    code, text = c.rcpt("bad@rcpt.test")
                    return code == 550 and b"5.7.1 Recipient <bad@rcpt.test> not allowed" in text
            wait_until(refused, 5, "RCPT TO the bounced address to be refused", step=0.3)
        finally:
            server.stop()
        store = Store(server.storage_url)
        try:
            secret = store.get_or_create_secret(verp.SECRET_NAME)
            record = store.get_message(mid)
        finally:
            store.close()
        ids = {r.address: r.id for r in record.recipients}
        copies = [m for m in messages if m.mail_from not in ("", "<>")]
        assert sorted(r for m in copies for r in m.rcpt_tos) == ["good1@rcpt.test",
                                                                 "good2@other.test"]
        for m in copies:  # VERP return path: bounces+<token>@bounce.test, one per recipient
            assert m.mail_from.startswith("bounces+") and m.mail_from.endswith("@bounce.test")
            assert verp.decode(m.mail_from, secret) == (mid, ids[m.rcpt_tos[0]])
        [dsn] = [m for m in messages if m.mail_from in ("", "<>")]  # null reverse path
        assert dsn.rcpt_tos == [BOUNCE_ADDRESS]
        report = email.message_from_bytes(dsn.data)
        assert report.get_content_type() == "multipart/report"
        text = dsn.data.decode()
        assert "Final-Recipient: rfc822; bad@rcpt.test" in text
        assert "Status: 5.1.1" in text and "User unknown" in text
        assert "Subject: Hello" in text  # the original's headers are attached
        [bounced] = [r for r in shown["recipients"] if r["address"] == "bad@rcpt.test"]
        assert bounced["last_reply"].startswith("550 5.1.1")


def test_null_mx_and_nxdomain_bounce_at_once_and_a_named_wait_is_honoured(
    tmp_path: Path,
) -> None:
    with dns_world() as dns, SmtpSink(rcpt_replies={
        "slow@rcpt.test": "450 4.2.0 Greylisted, please try again in 120 seconds"
    }) as sink:
        server = start_server(tmp_path, dns, sink.port)
        try:
            mid = submit(server, ["x@nullmx.test", "y@nowhere.test", "slow@rcpt.test"])
            shown = wait_statuses(server, mid, {"x@nullmx.test": "bounced",
                                                "y@nowhere.test": "bounced",
                                                "slow@rcpt.test": "deferred"})
        finally:
            server.stop()
        by = {r["address"]: r for r in shown["recipients"]}
        assert "null MX" in by["x@nullmx.test"]["last_reply"]
        assert "NXDOMAIN" in by["y@nowhere.test"]["last_reply"]
        slow = by["slow@rcpt.test"]
        wait = (datetime.fromisoformat(slow["next_attempt_at"]) - datetime.now(UTC)).total_seconds()
        assert 100 < wait <= 121, wait
        assert all(r["attempts"] == 1 for r in shown["recipients"])


def test_connections_are_reused_and_commands_pipelined(tmp_path: Path) -> None:
    with dns_world() as dns, WireRecorder() as wire:
        server = start_server(tmp_path, dns, wire.port, workers=1, max_connections_per_host=2)
        try:
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("tester")
                ids = [submit(server, [f"r{i}@rcpt.test"], message_bytes(f"n{i}"), client=c)
                       for i in range(30)]
            wait_until(lambda: len(wire.messages) >= 30, 20, "30 messages at the recorder")
            wait_statuses(server, ids[-1], {"r29@rcpt.test": "delivered"})
        finally:
            server.stop()
        assert len(wire.messages) == 30
        assert len(wire.chunks) <= 10, f"{len(wire.chunks)} connections for 30 messages"
        pipelined = [c for conn in wire.chunks for c in conn
                     if b"MAIL FROM:" in c and b"RCPT TO:" in c and b"DATA\r\n" in c]
        assert pipelined, "no MAIL+RCPT+DATA in one write"
