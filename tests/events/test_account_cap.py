"""`[webhooks] max_per_account`: the POSTs one account may have in flight over all its
receivers. It was fixed at half of `max_concurrency`, which stays the default."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.store.factories import make_message

from postroom.config.settings import Settings, WebhookSettings
from postroom.events.sender import account_cap
from postroom.events.service import WebhookThread
from postroom.store import Store
from support.databases import sqlite_url


class SlowReceiver:
    """Answers every POST after `delay` seconds and remembers the most it held at once."""

    def __init__(self, delay: float) -> None:
        self.now = self.peak = self.done = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    receiver.now += 1
                    receiver.peak = max(receiver.peak, receiver.now)
                time.sleep(delay)
                with lock:
                    receiver.now -= 1
                    receiver.done += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dlr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(sqlite_url(tmp_path)) as opened:
        yield opened


def test_the_default_is_still_half_of_max_concurrency() -> None:
    assert WebhookSettings().max_per_account is None
    assert account_cap(WebhookSettings(max_concurrency=64)) == 32
    assert account_cap(WebhookSettings(max_concurrency=1)) == 1
    assert account_cap(WebhookSettings(max_concurrency=64, max_per_account=5)) == 5


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTROOM_WEBHOOKS__MAX_PER_ACCOUNT", "3")
    assert Settings().webhooks.max_per_account == 3


def test_an_account_has_at_most_max_per_account_posts_in_flight(store: Store) -> None:
    settings = WebhookSettings(poll_seconds=0.05, timeout_seconds=5.0, max_concurrency=8,
                               max_per_endpoint=8, max_per_account=3,
                               allow_private_targets=True)  # the receiver is on loopback
    receiver = SlowReceiver(delay=0.3)
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        for n in range(8):  # a notify URL each: eight deliveries to one receiver
            message = make_message(account.id, f"v{n}@x.example",
                                   options={"notify_url": f"{receiver.url}?n={n}"})
            store.enqueue_many([message])
            store.append_event("delivered", message_id=message.id,
                               recipient=f"v{n}@x.example")
        worker = WebhookThread(store, settings)
        worker.start()
        try:
            deadline = time.monotonic() + 15
            while receiver.done < 8:
                assert time.monotonic() < deadline, f"{receiver.done} of 8 delivered"
                time.sleep(0.05)
        finally:
            worker.stop()
    finally:
        receiver.close()
    assert receiver.peak == 3  # not 4 (half of max_concurrency), not 8
