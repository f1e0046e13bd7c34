"""A recipient's asynchronous bounce is recorded once, however often its DSN arrives: the same
VERP address named twice in one transaction, the same report sent again later, and a remote MTA
retrying after our 451 (which repeats the recipients we had already recorded)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.inbound.listener import InboundListener, open_store, sent

from postroom.model import Account
from postroom.store import Store
from postroom.store.errors import StoreUnavailable

DSN = """From: MAILER-DAEMON@mx.rcpt.test\r
To: {verp}\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r
\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.rcpt.test\r
\r
Final-Recipient: rfc822; {rcpt}\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r
--B--\r
"""


class FlakyStore(Store):
    """The store is unavailable once for the bounce of `fail_once` (the inbound service
    answers 451 and the remote MTA retries the whole transaction)."""

    fail_once: int | None = None

    def record_async_bounce(self, message_id: str, recipient_id: int, **kw: Any) -> Any:
        if recipient_id == self.fail_once:
            self.fail_once = None
            raise StoreUnavailable("the database is busy")
        return super().record_async_bounce(message_id, recipient_id, **kw)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlakyStore]:
    yield from open_store(request, tmp_path, FlakyStore)


@pytest.fixture
def account(store: Store) -> Account:
    return store.create_account("acme", sender_domains=["acme.test"])


def report(port: int, rcpts: list[str], body: str) -> tuple[int, bytes]:
    """One SMTP transaction from a remote MTA: MAIL FROM:<>, the RCPTs, the report."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("mx.rcpt.test")
        assert c.mail("<>")[0] == 250
        for rcpt in rcpts:
            assert c.rcpt(rcpt)[0] == 250
        return c.data(body.encode())


def bounced(store: Store, message_id: str) -> list[str | None]:
    return [e.recipient for e in store.list_events(message_id) if e.type == "bounced"]


def test_the_same_verp_address_twice_in_one_transaction(store: Store, account: Account) -> None:
    mid, returns = sent(store, account.id, "gone@rcpt.test")
    address = returns["gone@rcpt.test"]
    with InboundListener(store) as port:
        code, _ = report(port, [address, address],
                         DSN.format(verp=address, rcpt="gone@rcpt.test"))
    assert code == 250
    assert bounced(store, mid) == ["gone@rcpt.test"]


def test_the_same_report_again_records_nothing_more(store: Store, account: Account) -> None:
    mid, returns = sent(store, account.id, "gone@rcpt.test")
    address = returns["gone@rcpt.test"]
    body = DSN.format(verp=address, rcpt="gone@rcpt.test")
    with InboundListener(store) as port:
        assert report(port, [address], body)[0] == 250
        assert report(port, [address], body)[0] == 250  # accepted: the report is known
    assert bounced(store, mid) == ["gone@rcpt.test"]
    assert store.suppressed_among(account.id, ["gone@rcpt.test"]) == {"gone@rcpt.test"}


def test_a_retry_after_451_records_each_recipient_once(
    store: FlakyStore, account: Account,
) -> None:
    mid, returns = sent(store, account.id, "first@rcpt.test", "second@rcpt.test")
    record = store.get_message(mid)
    assert record is not None
    store.fail_once = next(r.id for r in record.recipients if r.address == "second@rcpt.test")
    rcpts = [returns["first@rcpt.test"], returns["second@rcpt.test"]]
    body = DSN.format(verp=rcpts[0], rcpt="first@rcpt.test")
    with InboundListener(store) as port:
        assert report(port, rcpts, body)[0] == 451
        assert bounced(store, mid) == ["first@rcpt.test"]
        assert report(port, rcpts, body)[0] == 250  # the remote MTA's retry
    assert sorted(bounced(store, mid)) == ["first@rcpt.test", "second@rcpt.test"]
