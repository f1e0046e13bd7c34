"""Webhook pipeline fixes from review: a bad URL must not stop dispatch for every account,
every attempt is recorded whatever it raises, and no feedback report is an internal error."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store.factories import make_message

from postroom.config.settings import WebhookSettings
from postroom.dialects import values
from postroom.dialects.values import DialectError
from postroom.events import arf, policy
from postroom.events.endpoints import url_problem
from postroom.events.planner import plan
from postroom.events.service import WebhookThread
from postroom.model import Account
from postroom.model.webhooks import DeliveryStatus
from postroom.store import Store, webhook_rows
from support.databases import postgres_url_or_skip, sqlite_url

FAST = WebhookSettings(retry_base_seconds=0.1, retry_max_seconds=0.5, poll_seconds=0.05,
                       timeout_seconds=1.0, max_per_endpoint=2, max_concurrency=8,
                       allow_private_targets=True)  # the receivers are on loopback

UNSTORABLE = [
    "http://example.com:abc/dlr",  # a port that does not parse
    "http://example.com:65536/dlr",
    "https://example.com/" + "a" * 2000,  # longer than the store's url column
    "https://" + "b" * 400 + ".example.com/",  # a host longer than the endpoint column
]
BAD_URLS = [
    *UNSTORABLE,
    "http://example.com:0/dlr",
    "http://xn--a.example/dlr",  # IDNA that httpx cannot decode
    "http://a..b.example/",
    "http://999.1.1.1/",
    "http://[::1/",
    "http://ex ample.com/",
    "ftp://example.com/x",
    "https://user:secret@hooks.example.com/in", "https://@hooks.example.com/in",
]
GOOD_URLS = ["https://hooks.example.com/in", "http://example.com:8080/dlr?x=1#f",
             "https://bücher.example/", "http://xn--bcher-kva.example/",
             "http://[2606:4700::1111]/", "https://8.8.8.8:443/",
             "https://example.com/" + "a" * 1900]


# -- 1. one URL check for every door ---------------------------------------------------------

@pytest.mark.parametrize("url", BAD_URLS)
def test_every_door_refuses_a_url_the_pipeline_cannot_use(url: str) -> None:
    assert values.http_url_problem(url)
    with pytest.raises(DialectError):
        values.url("X-IB-Notify-Url", url)
    assert url_problem(url, allow_private=True)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_every_door_takes_a_usable_url(url: str) -> None:
    assert values.http_url_problem(url) is None
    assert values.url("X-IB-Notify-Url", url) == url
    assert url_problem(url) is None


def test_the_http_api_refuses_a_bad_notify_url_as_invalid_data(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from postroom.admin import accounts as admin_accounts
    from postroom.api.app import create_app
    from postroom.config.settings import Settings

    app_settings = Settings(data_dir=tmp_path)
    with Store.open(app_settings.storage_url) as store:
        account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                                sender_addresses=[])
        _, key = admin_accounts.create_key(store, account.id, scopes=["send"])
        item = {"from": {"email": "a@shop.example"}, "to": [{"email": "r@example.org"}],
                "subject": "s", "content": "x", "notify_url": "http://example.com:abc/dlr"}
        with TestClient(create_app(app_settings, store),
                        headers={"Authorization": f"Bearer {key}"}) as client:
            answer = client.post("/v1/send_mail", json={"data": [item]})
            assert answer.status_code == 400 and answer.json()["code"] == "INVALID_DATA"
            [field] = answer.json()["details"]["fields"]
            assert field["api_name"] == "data.0.notify_url" and "port" in field["problem"]
            ok = client.post("/v1/send_mail", json={"data": [
                {**item, "notify_url": "https://app.example/dlr"}]})
            assert ok.status_code == 200
        assert store.list_messages() and not any(
            "abc" in str(m.options) for m in store.list_messages())


def test_webhook_registration_refuses_an_overlong_host(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The API and the CLI both ask url_problem; a host the endpoint column cannot hold is
    refused by each."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from postroom.admin import accounts as admin_accounts
    from postroom.api.app import create_app
    from postroom.cli import app as cli
    from postroom.config.settings import Settings

    for name in [k for k in __import__("os").environ if k.startswith("POSTROOM_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "p.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    long_host = "https://" + "b" * 300 + ".example.com/hook"
    app_settings = Settings(data_dir=tmp_path)
    with Store.open(app_settings.storage_url) as store:
        account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                                sender_addresses=[])
        _, key = admin_accounts.create_key(store, account.id, scopes=["send"])
        with TestClient(create_app(app_settings, store),
                        headers={"Authorization": f"Bearer {key}"}) as client:
            answer = client.post("/v1/webhooks", json={"url": long_host})
        assert answer.status_code == 400 and "host name is longer" in answer.json()["message"]
        done = CliRunner().invoke(cli, ["webhooks", "create", long_host, "--account", "shop",
                                        "--config", str(config)])
        assert done.exit_code == 2 and "host name is longer" in done.output
        assert store.list_webhooks(account.id) == []


# -- 1. dispatch survives what was stored before the doors checked ---------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = sqlite_url(tmp_path) if request.param == "sqlite" else postgres_url_or_skip()
    with Store.open(url) as opened:
        yield opened


def _poison(store: Store, urls: list[str]) -> None:
    """Messages of another account whose notify URLs bypassed every door (stored earlier)."""
    evil = store.create_account("evil", sender_domains=["evil.test"])
    for url in urls:
        message = make_message(evil.id, "v@x.example", options={"notify_url": url})
        store.enqueue_many([message])
        store.append_event("delivered", message_id=message.id, recipient="v@x.example")


def _dispatch_all(store: Store, caplog: pytest.LogCaptureFixture) -> int:
    """Dispatch every pending event; how many planned deliveries were dropped (logged)."""
    with caplog.at_level(logging.WARNING, "postroom.events"):
        while store.dispatch_events(plan, limit=1000):
            pass
    return len([r for r in caplog.records if "was dropped" in r.getMessage()])


def test_dispatch_drops_unstorable_deliveries_and_moves_on(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    good = store.create_account("good", sender_domains=["good.test"])
    hook, _ = store.create_webhook(good.id, "https://hooks.example.com/in",
                                   event_types=["queued"])
    store.create_webhook(good.id, "https://" + "h" * 300 + ".example.com/in")  # stored earlier
    _poison(store, UNSTORABLE)
    store.enqueue_many([make_message(good.id, "a@x.example")])
    dropped = _dispatch_all(store, caplog)
    assert len(store.list_webhook_deliveries(good.id, hook.id)) == 1
    assert dropped == len(UNSTORABLE) + 1  # each notify URL, and the webhook's delivery
    store.enqueue_many([make_message(good.id, "b@x.example")])  # the cursor keeps moving
    while store.dispatch_events(plan, limit=1000):
        pass
    assert len(store.list_webhook_deliveries(good.id, hook.id)) == 2


def test_rows_the_database_still_refuses_are_dropped_one_by_one(
        store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The safety net behind the checks: a value PostgreSQL refuses costs only its row."""
    monkeypatch.setattr(webhook_rows, "_unfit", lambda row: None, raising=False)
    good = store.create_account("good", sender_domains=["good.test"])
    hook, _ = store.create_webhook(good.id, "https://hooks.example.com/in",
                                   event_types=["queued"])
    _poison(store, ["https://example.com/" + "a" * 2010])
    store.enqueue_many([make_message(good.id, "a@x.example")])
    dropped = _dispatch_all(store, caplog)
    assert len(store.list_webhook_deliveries(good.id, hook.id)) == 1
    assert dropped == (store.dialect == "postgresql")  # SQLite keeps long values


# -- 2. every attempt is recorded ------------------------------------------------------------

@pytest.mark.parametrize("value", ["\xb2", "\u0663", "1" * 40, "Mon, 99 Foo 2024", "soon"])
def test_a_strange_retry_after_is_no_retry_after(value: str) -> None:
    assert policy.retry_after(value, datetime.now(UTC)) is None


def test_retry_after_still_reads_seconds_and_dates() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert policy.retry_after(" 120 ", now) == 120.0
    assert policy.retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now) == 60.0


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(sqlite_url(tmp_path)) as opened:
        yield opened


@pytest.fixture
def account(sqlite_store: Store) -> Account:
    return sqlite_store.create_account("acme", sender_domains=["acme.test"])


def _running(store: Store) -> Iterator[WebhookThread]:
    worker = WebhookThread(store, FAST)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def service(sqlite_store: Store) -> Iterator[WebhookThread]:
    yield from _running(sqlite_store)


def _wait_for_attempt(store: Store, account: Account, hook_id: str,
                      timeout: float = 6.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in store.list_webhook_deliveries(account.id, hook_id) if d.attempts]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no attempt was ever recorded")


def test_a_url_httpx_cannot_use_fails_at_once(sqlite_store: Store, account: Account,
                                              service: WebhookThread) -> None:
    hook, _ = sqlite_store.create_webhook(account.id, "http://xn--a.example/dlr",
                                          event_types=["queued"])  # stored before the checks
    sqlite_store.enqueue_many([make_message(account.id, "a@x.example")])
    d = _wait_for_attempt(sqlite_store, account, hook.id)
    assert d.status is DeliveryStatus.FAILED and d.attempts == 1
    assert d.last_error.startswith("invalid URL:") and d.next_attempt_at is None


def _answering(reply: bytes) -> Iterator[int]:
    """A loopback receiver that reads one request per connection and answers `reply` raw."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_non_ascii_digit_retry_after_is_recorded_and_retried(
        sqlite_store: Store, account: Account, service: WebhookThread) -> None:
    reply = (b"HTTP/1.1 503 Busy\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")
    for port in _answering(reply):
        hook, _ = sqlite_store.create_webhook(account.id, f"http://127.0.0.1:{port}/h",
                                              event_types=["queued"])
        sqlite_store.enqueue_many([make_message(account.id, "a@x.example")])
        d = _wait_for_attempt(sqlite_store, account, hook.id)
        assert d.last_status_code == 503 and d.status is DeliveryStatus.PENDING


def test_any_error_in_an_attempt_is_recorded_and_retried(
        sqlite_store: Store, account: Account, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(value: str | None, now: datetime) -> float | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(policy, "retry_after", broken)
    with caplog.at_level(logging.WARNING, "postroom.events"):
        for _ in _running(sqlite_store):
            for port in _answering(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n"):
                hook, _ = sqlite_store.create_webhook(
                    account.id, f"http://127.0.0.1:{port}/h", event_types=["queued"])
                sqlite_store.enqueue_many([make_message(account.id, "a@x.example")])
                d = _wait_for_attempt(sqlite_store, account, hook.id)
    assert d.last_error == "error: RuntimeError: a bug" and d.status is DeliveryStatus.PENDING
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


# -- 3. no feedback report is an internal error ----------------------------------------------

ARF = (b"From: fbl@isp.test\r\nTo: fbl@postroom.test\r\nMIME-Version: 1.0\r\n"
       b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
       b"--B\r\nContent-Type: text/plain\r\n\r\ncomplaint\r\n"
       b"--B\r\nContent-Type: message/feedback-report\r\n\r\n"
       b"Feedback-Type: abuse\r\nUser-Agent: isp/1\r\nOriginal-Mail-From: <b@shop.test>\r\n"
       b"Original-Rcpt-To: a@b.test\r\nSource-IP: 192.0.2.1\r\n"
       b"Arrival-Date: Thu, 8 Mar 2024 14:00:00 +0000\r\nReported-Domain: shop.test\r\n"
       b"--B\r\nContent-Type: message/rfc822\r\n\r\n"
       b"Message-ID: <01aaaaaaaaaaaaaaaaaaaaaaaa@host>\r\nReturn-Path: <b@shop.test>\r\n"
       b"To: a@b.test\r\n\r\nx\r\n--B--\r\n")
#: The header lines of ARF that parse_arf reads, each as it occurs there once.
READ = [b"Feedback-Type: abuse", b"User-Agent: isp/1", b"Original-Mail-From: <b@shop.test>",
        b"Original-Rcpt-To: a@b.test", b"Source-IP: 192.0.2.1",
        b"Arrival-Date: Thu, 8 Mar 2024 14:00:00 +0000", b"Reported-Domain: shop.test",
        b"Message-ID: <01aaaaaaaaaaaaaaaaaaaaaaaa@host>", b"Return-Path: <b@shop.test>",
        b"\r\nTo: a@b.test"]


def _with(raw: bytes, line: bytes, value: bytes) -> bytes:
    """`raw` with the value of header `line` (one of READ) replaced by `value`."""
    assert raw.count(line) == 1
    return raw.replace(line, line.split(b":")[0] + b": " + value)


def test_an_8bit_feedback_type_is_read() -> None:
    raw = ARF.replace(b"Feedback-Type: abuse", b"Feedback-Type: abus\xe9")
    found = arf.parse_arf(raw)
    assert found is not None and found.recipient == "a@b.test"
    assert found.feedback_type.startswith("abus")


@pytest.mark.parametrize("line", READ)
def test_8bit_in_any_field_read_is_no_error(line: bytes, caplog: pytest.LogCaptureFixture) -> None:
    raw = _with(ARF, line, line.split(b": ", 1)[1] + b" \xff\xe9=?utf-8?q?=FF?=")
    with caplog.at_level(logging.WARNING, "postroom.events"):
        arf.parse_arf(raw)
    assert not caplog.records  # parsed, not merely caught by the safety net


_TOKENS = [b"\r\n", b";", b"=", b'"', b"=?utf-8?q?", b"?=", b"<", b">", b"(", b")", b"\\",
           b"\xff", b"\xe9", b":", b"--B", b"\r\n\r\n", b"Content-Type: message/rfc822\r\n",
           b"Content-Transfer-Encoding: base64\r\n", b'charset="x-unknown"', b"\x00"]


def _parsed_quietly(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """parse_arf gives a Complaint or None, without needing its safety net."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, "postroom.events"):
        found = arf.parse_arf(raw)
    assert found is None or isinstance(found, arf.Complaint)
    assert not caplog.records, raw


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(READ), st.lists(
    st.sampled_from(_TOKENS) | st.binary(max_size=12), max_size=6).map(b"".join), max_size=4))
def test_any_bytes_in_the_fields_read_never_raise(caplog: pytest.LogCaptureFixture,
                                                  fields: dict[bytes, bytes]) -> None:
    raw = ARF
    for line, value in fields.items():
        raw = _with(raw, line, value)
    _parsed_quietly(raw, caplog)


def test_randomly_mutated_reports_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    """fuzz_reports.py from the review, seeded and bounded (it found 48 of 20,000 failing)."""
    rng = random.Random(1)
    for _ in range(3000):
        data = bytearray(ARF)
        for _ in range(rng.randint(1, 6)):
            at, op = rng.randrange(len(data)), rng.random()
            if op < 0.5:
                data[at:at] = rng.choice(_TOKENS)
            elif op < 0.8:
                del data[at:at + rng.randint(1, 10)]
            else:
                data[at] = rng.randrange(256)
        _parsed_quietly(bytes(data), caplog)


# -- 4. one account cannot take every slot ---------------------------------------------------

def test_claims_take_at_most_an_accounts_room(store: Store) -> None:
    one = store.create_account("one", sender_domains=["one.test"])
    two = store.create_account("two", sender_domains=["two.test"])
    for account, n in ((one, 5), (two, 2)):
        for i in range(n):
            message = make_message(account.id, "v@x.example",
                                   options={"notify_url": f"https://h{i}.example/dlr"})
            store.enqueue_many([message])
            store.append_event("delivered", message_id=message.id, recipient="v@x.example")
    while store.dispatch_events(plan, limit=1000):
        pass
    taken = store.claim_webhook_deliveries_by_account(
        "o1", now=datetime.now(UTC), limit=100, lease_seconds=60, account_room=lambda a: 2)
    assert sorted(a for a, _ in taken) == sorted([one.id] * 2 + [two.id] * 2)
    more = store.claim_webhook_deliveries_by_account(
        "o1", now=datetime.now(UTC), limit=100, lease_seconds=60, skip_accounts=[one.id])
    assert more == []  # two's are leased already; one's are left out


def test_many_dead_receivers_of_one_account_leave_others_half_the_slots(
        sqlite_store: Store) -> None:
    from support.http_receiver import HttpReceiver

    holes = [socket.create_server(("127.0.0.1", 0), backlog=50) for _ in range(8)]  # silent
    slow = WebhookSettings(retry_base_seconds=10, poll_seconds=0.05, timeout_seconds=1.5,
                           max_per_endpoint=4, max_concurrency=4, allow_private_targets=True)
    try:
        evil = sqlite_store.create_account("evil", sender_domains=["e.test"])
        good = sqlite_store.create_account("good", sender_domains=["g.test"])
        for hole in holes:
            message = make_message(evil.id, "v@x.example", options={
                "notify_url": f"http://127.0.0.1:{hole.getsockname()[1]}/"})
            sqlite_store.enqueue_many([message])
            sqlite_store.append_event("delivered", message_id=message.id,
                                      recipient="v@x.example")
        with HttpReceiver() as live:
            sqlite_store.create_webhook(good.id, live.url(), event_types=["queued"])
            worker = WebhookThread(sqlite_store, slow)
            worker.start()
            try:
                time.sleep(0.3)  # the dead receivers hold what they may
                started = time.monotonic()
                sqlite_store.enqueue_many([make_message(good.id, "a@x.example")])
                live.wait_for(1, timeout=10)
                assert time.monotonic() - started < 0.8  # not after a wave of timeouts
            finally:
                worker.stop()
    finally:
        for hole in holes:
            hole.close()
