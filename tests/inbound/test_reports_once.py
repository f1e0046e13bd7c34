"""A complaint or an unsubscribe is recorded once per (message, recipient), however often it
arrives: the same ARF report sent again, a remote MTA's retry after our 451 (which repeats every
recipient of the transaction, the feedback address too), the mailto unsubscribe sent twice, and
RFC 8058 one-click POSTs that arrive together. A complaint about another recipient or another
message is still recorded."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.inbound.listener import InboundListener, open_store, sent, verp_paths

from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.model import Account
from postroom.render import tokens
from postroom.store import Store
from postroom.store.errors import StoreUnavailable

FEEDBACK = "fbl@postroom.test"
B = "arf_boundary"


def arf(return_path: str, rcpt: str) -> bytes:
    """An RFC 5965 report about the mail Postroom sent to `rcpt` through `return_path`."""
    return (
        f"From: <staff@fbl.isp.test>\r\nTo: <{FEEDBACK}>\r\nSubject: FW: hi\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
        f"--{B}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{return_path}>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n"
        f"--{B}\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Return-Path: <{return_path}>\r\nFrom: x@acme.test\r\nTo: {rcpt}\r\n"
        f"Subject: hi\r\n\r\nhello\r\n--{B}--\r\n"
    ).encode()


class FlakyStore(Store):
    """The store is unavailable once for the unsubscribe of `fail_once` (the inbound service
    answers 451 and the remote MTA retries the whole transaction)."""

    fail_once: str | None = None

    def add_suppression(self, account_id: str, address: str, reason: str) -> None:
        if reason == "unsubscribe" and address == self.fail_once:
            self.fail_once = None
            raise StoreUnavailable("the database is busy")
        super().add_suppression(account_id, address, reason)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlakyStore]:
    yield from open_store(request, tmp_path, FlakyStore)


@pytest.fixture
def account(store: Store) -> Account:
    return store.create_account("acme", sender_domains=["acme.test"])


def transaction(port: int, rcpts: list[str], body: bytes) -> int:
    """One SMTP transaction from a remote MTA: MAIL FROM:<>, the RCPTs, the report."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("mx.isp.test")
        assert c.mail("<>")[0] == 250
        for rcpt in rcpts:
            assert c.rcpt(rcpt)[0] == 250
        return c.data(body)[0]


def recorded(store: Store, kind: str, *message_ids: str) -> list[tuple[str | None, str | None]]:
    return [(e.message_id, e.recipient) for m in message_ids for e in store.list_events(m)
            if e.type == kind]


def test_the_same_complaint_again_records_nothing_more(store: Store, account: Account) -> None:
    mid, paths = sent(store, account.id, "reader@rcpt.test")
    report = arf(paths["reader@rcpt.test"], "reader@rcpt.test")
    with InboundListener(store, feedback_address=FEEDBACK) as port:
        assert transaction(port, [FEEDBACK], report) == 250
        assert transaction(port, [FEEDBACK], report) == 250  # accepted: the report is known
    assert recorded(store, "complained", mid) == [(mid, "reader@rcpt.test")]
    assert store.suppressed_among(account.id, ["reader@rcpt.test"]) == {"reader@rcpt.test"}


def test_complaints_about_other_recipients_and_messages_are_recorded(
    store: Store, account: Account,
) -> None:
    first, paths = sent(store, account.id, "a@rcpt.test", "b@rcpt.test")
    second, later = sent(store, account.id, "a@rcpt.test")
    with InboundListener(store, feedback_address=FEEDBACK) as port:
        for report in (arf(paths["a@rcpt.test"], "a@rcpt.test"),
                       arf(paths["b@rcpt.test"], "b@rcpt.test"),
                       arf(later["a@rcpt.test"], "a@rcpt.test")):
            assert transaction(port, [FEEDBACK], report) == 250
    assert sorted(recorded(store, "complained", first, second)) == sorted(
        [(first, "a@rcpt.test"), (first, "b@rcpt.test"), (second, "a@rcpt.test")])


def test_a_retry_after_451_records_the_complaint_once(
    store: FlakyStore, account: Account,
) -> None:
    """The complaint is recorded, then the unsubscribe in the same transaction fails: 451, and
    the remote MTA sends the whole transaction again."""
    mid, paths = sent(store, account.id, "reader@rcpt.test", "leaver@rcpt.test")
    unsubscribe = verp_paths(store, mid, "unsubscribe@bounce.test")["leaver@rcpt.test"]
    store.fail_once = "leaver@rcpt.test"
    report = arf(paths["reader@rcpt.test"], "reader@rcpt.test")
    with InboundListener(store, feedback_address=FEEDBACK) as port:
        assert transaction(port, [FEEDBACK, unsubscribe], report) == 451
        assert recorded(store, "complained", mid) == [(mid, "reader@rcpt.test")]
        assert transaction(port, [FEEDBACK, unsubscribe], report) == 250  # the retry
    assert recorded(store, "complained", mid) == [(mid, "reader@rcpt.test")]
    assert recorded(store, "unsubscribed", mid) == [(mid, "leaver@rcpt.test")]


def test_the_mailto_unsubscribe_twice_is_one_event(store: Store, account: Account) -> None:
    mid, _ = sent(store, account.id, "leaver@rcpt.test", "stayer@rcpt.test")
    unsubscribe = verp_paths(store, mid, "unsubscribe@bounce.test")
    with InboundListener(store) as port:
        for _ in range(2):
            assert transaction(port, [unsubscribe["leaver@rcpt.test"]], b"Subject: x\r\n\r\n") \
                == 250
        assert transaction(port, [unsubscribe["stayer@rcpt.test"]], b"Subject: x\r\n\r\n") == 250
    assert sorted(recorded(store, "unsubscribed", mid)) == [
        (mid, "leaver@rcpt.test"), (mid, "stayer@rcpt.test")]


def test_one_click_posts_arriving_together_are_one_event(
    store: Store, account: Account, tmp_path: Path,
) -> None:
    """RFC 8058 clients retry, and a scanner may POST beside the person: requests in flight at
    once all find the address not yet suppressed, and used to add an event each."""
    app = create_app(Settings(data_dir=tmp_path), store)
    mid, _ = sent(store, account.id, "leaver@rcpt.test")
    token = tokens.sign(app.state.secret, "unsubscribe",
                        {"a": account.id, "m": mid, "r": "leaver@rcpt.test"})

    async def post_together() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as c:
            return await asyncio.gather(*(
                c.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
                for _ in range(4)))

    assert [r.status_code for r in asyncio.run(post_together())] == [200] * 4
    assert recorded(store, "unsubscribed", mid) == [(mid, "leaver@rcpt.test")]
