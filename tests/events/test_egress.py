"""Webhook and notify POSTs go to public addresses only, unless `[webhooks]
allow_private_targets` says otherwise (SSRF): checked where the connection is made."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from tests.store.factories import make_message

from postroom.config.settings import WebhookSettings
from postroom.events.egress import GuardedBackend, guarded_transport, is_public
from postroom.events.endpoints import url_problem
from postroom.events.service import WebhookThread
from postroom.model.webhooks import DeliveryStatus
from postroom.store import Store
from support.databases import sqlite_url
from support.http_receiver import HttpReceiver


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.9", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1%eth0", False), ("fd00::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("8.8.8.8", True), ("93.184.216.34", True),
    ("2001:4860:4860::8888", True), ("::ffff:8.8.8.8", True),
    ("64:ff9b::a00:1", False), ("64:ff9b:1::a00:1", False), ("::7f00:1", False),
    ("::ffff:0:7f00:1", False), ("2002:a9fe:a9fe::", False), ("fec0::1", False),
    ("64:ff9b::808:808", True), ("2002:808:808::1", True),
])
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_a_post_to_loopback_is_refused_before_connecting() -> None:
    with HttpReceiver() as hook:
        async def post(url: str) -> None:
            async with httpx.AsyncClient(transport=guarded_transport(httpx.Limits())) as client:
                await client.post(url, content=b"{}")

        for url in (hook.url(), hook.url().replace("127.0.0.1", "localhost")):
            with pytest.raises(httpx.ConnectError, match=r"refused: .* non-public address"):
                asyncio.run(post(url))
        time.sleep(0.1)
        assert hook.requests == []


def test_a_refused_receiver_reads_as_documented_in_the_history() -> None:
    """WEBHOOKS.md: `refused: HOST resolves to a non-public address …`, no httpx class name."""
    from postroom.events.sender import _describe

    async def post(url: str) -> None:
        async with httpx.AsyncClient(transport=guarded_transport(httpx.Limits())) as client:
            await client.post(url, content=b"{}")

    with HttpReceiver() as hook:
        try:
            asyncio.run(post(hook.url()))
        except httpx.ConnectError as exc:
            text = _describe(exc)
        else:
            raise AssertionError("not refused")
    assert text.startswith("refused: 127.0.0.1 resolves to a non-public address"), text


class _Inner(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.asked.append((host, port))
        raise httpcore.ConnectError("stop here")


def test_a_public_name_is_connected_to_by_the_address_that_was_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checked address is the one connected to: a second lookup (DNS rebinding) cannot
    swap in a private one."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))])
    inner = _Inner()
    with pytest.raises(httpcore.ConnectError, match="stop here"):
        asyncio.run(GuardedBackend(inner).connect_tcp("hooks.example.com", 443))
    assert inner.asked == [("93.184.216.34", 443)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(sqlite_url(tmp_path)) as opened:
        yield opened


def test_the_webhook_service_refuses_private_receivers_by_default(store: Store) -> None:
    account = store.create_account("acme", sender_domains=["acme.test"])
    settings = WebhookSettings(retry_base_seconds=10, poll_seconds=0.05, timeout_seconds=1.0)
    assert settings.allow_private_targets is False
    with HttpReceiver() as hook:
        webhook, _ = store.create_webhook(account.id, hook.url(), event_types=["queued"])
        worker = WebhookThread(store, settings)
        worker.start()
        try:
            store.enqueue_many([make_message(account.id, "a@x.example")])
            deadline = time.monotonic() + 10
            while True:
                [d] = store.list_webhook_deliveries(account.id, webhook.id) or [None]
                if d is not None and d.history:
                    break
                assert time.monotonic() < deadline, "no attempt was made"
                time.sleep(0.05)
        finally:
            worker.stop()
        assert hook.requests == []
    assert "non-public address" in (d.history[0].error or "")
    for _ in range(100):  # failed at once: retrying would only be refused again
        [d] = store.list_webhook_deliveries(account.id, webhook.id)
        if d.status is DeliveryStatus.FAILED:
            break
        time.sleep(0.05)
    assert d.status is DeliveryStatus.FAILED and d.attempts == 1


def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443))])
    inner = _Inner()
    with pytest.raises(httpcore.ConnectError, match=r"non-public address \(10\.0\.0\.1\)"):
        asyncio.run(GuardedBackend(inner).connect_tcp("mixed.example.com", 443))
    assert inner.asked == []


def test_each_checked_address_is_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:4860:4860::8888", 443, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))])
    inner = _Inner()
    with pytest.raises(httpcore.ConnectError, match="stop here"):
        asyncio.run(GuardedBackend(inner).connect_tcp("dual.example.com", 443))
    assert inner.asked == [("2001:4860:4860::8888", 443), ("93.184.216.34", 443)]


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:9/in", True), ("http://localhost/in", True), ("http://a.localhost/", True),
    ("http://[::1]:80/", True), ("http://169.254.169.254/latest", True),
    ("http://10.0.0.5/hook", True), ("https://hooks.example.com/in", False),
    ("https://8.8.8.8/in", False),
])
def test_registration_refuses_obviously_internal_urls(url: str, problem: bool) -> None:
    assert (url_problem(url) is not None) is problem
    assert url_problem(url, allow_private=True) is None
