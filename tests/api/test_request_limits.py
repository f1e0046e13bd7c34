"""Request bodies are limited in front of the whole HTTP app (API and dashboard): a declared
Content-Length over the limit is refused at once, a streamed body as soon as it passes the
limit, and nothing past the limit is ever read. A 300 MB body to send_mail used to take the
server to 1.2 GB; the largest legitimate request (a message of max_message_size in base64)
still goes through."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.api.limits import request_limit
from postroom.config.settings import Settings
from postroom.store.api import Store
from postroom.web import with_dashboard

from .live import read_response, serving

LIMIT = 200_000


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[SimpleNamespace]:
    settings = Settings(data_dir=tmp_path, http={"max_request_bytes": LIMIT})
    store = Store.open(settings.storage_url)
    account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(store, account.id, scopes=["send", "read"])
    try:
        with serving(settings, store) as port:
            yield SimpleNamespace(port=port, key=key, settings=settings, store=store)
    finally:
        store.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def assert_too_large(status: int, body: bytes, limit: int = LIMIT) -> None:
    assert status == 413, body
    doc = json.loads(body)
    assert doc["code"] == "REQUEST_TOO_LARGE" and doc["status"] == "error", doc
    assert doc["details"]["maximum"] == limit


@pytest.mark.parametrize("path", ["/v1/send_mail", "/v1/send_raw", "/dashboard/login"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(site: Any, path: str
                                                                     ) -> None:
    with connect(site.port) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Authorization: Bearer {site.key}\r\n"
                     "Content-Length: 300000000\r\n\r\n".encode())  # and no body at all
        status, headers, body, closed = read_response(sock)
    assert_too_large(status, body)
    assert headers["content-type"] == "application/json"
    assert closed, "the rest of the body must not be read: the connection is closed"


MULTIPART = "multipart/form-data; boundary=b"
#: what each body starts with, so that it is well formed as far as it goes
PREFIX = {MULTIPART: b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
                     b"Content-Type: application/octet-stream\r\n\r\n",
          "application/json": b'{"data": [{"content": "',
          "application/x-www-form-urlencoded": b"key="}


def stream_chunked(sock: socket.socket, path: str, content_type: str, headers: str, cap: int
                   ) -> None:
    """Send a chunked body of up to `cap` bytes, stopping early once the server answers."""
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: {content_type}"
                 "\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    prefix = PREFIX.get(content_type, b"")
    sock.sendall(b"%x\r\n%s\r\n" % (len(prefix), prefix) if prefix else b"")
    chunk = b"a" * 16384
    sent = len(prefix)
    try:
        while sent < cap:
            if select.select([sock], [], [], 0)[0]:
                return  # an answer (or a close) before the end of the body
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        return


@pytest.mark.parametrize(("path", "content_type"), [
    ("/v1/send_mail", "application/json"),
    ("/v1/send_raw", "message/rfc822"),
    ("/v1/files", MULTIPART),
    ("/dashboard/login", "application/x-www-form-urlencoded"),
])
def test_a_streamed_body_is_cut_at_the_limit(site: Any, path: str, content_type: str) -> None:
    with connect(site.port) as sock:
        stream_chunked(sock, path, content_type, f"Authorization: Bearer {site.key}\r\n",
                       cap=4 * LIMIT)
        status, _, body, closed = read_response(sock)
    assert_too_large(status, body)
    assert closed


def test_a_small_length_beside_a_chunked_body_does_not_escape_the_count(site: Any) -> None:
    """Transfer-Encoding beats Content-Length (the server reads the chunks), so a declared
    length beside it must not be taken as the body's size."""
    with connect(site.port) as sock:
        stream_chunked(sock, "/v1/send_raw", "message/rfc822",
                       f"Authorization: Bearer {site.key}\r\nContent-Length: 10\r\n",
                       cap=4 * LIMIT)
        status, _, body, _ = read_response(sock)
    assert_too_large(status, body)


def receive_body(prefix: bytes, chunk: int, pulled: list[int]) -> Any:
    """An ASGI `receive` giving a body of 4 × LIMIT in `chunk`s; `pulled` counts what the app
    took."""
    async def receive() -> dict[str, Any]:
        body = b"a" * chunk if pulled[0] else prefix + b"a" * (chunk - len(prefix))
        pulled[0] += chunk
        return {"type": "http.request", "body": body, "more_body": pulled[0] < 4 * LIMIT}
    return receive


@pytest.mark.parametrize(("path", "content_type"), [
    ("/v1/send_mail", "application/json"),
    ("/v1/send_raw", "message/rfc822"),
    ("/v1/files", MULTIPART),
    ("/dashboard/login", "application/x-www-form-urlencoded"),
])
def test_nothing_past_the_limit_is_read_and_nothing_is_logged(
        site: Any, path: str, content_type: str, caplog: pytest.LogCaptureFixture) -> None:
    app = with_dashboard(create_app(site.settings, site.store), site.settings, site.store)
    pulled, sent = [0], []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", site.port),
             "headers": [(b"host", b"x"), (b"content-type", content_type.encode()),
                         (b"authorization", f"Bearer {site.key}".encode()),
                         (b"transfer-encoding", b"chunked")]}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(app(scope, receive_body(PREFIX.get(content_type, b""), 8192, pulled), send), 10))
    assert pulled[0] <= LIMIT + 8192, pulled
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert_too_large(413, body)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_the_default_limit_fits_the_largest_message_in_base64() -> None:
    size = Settings().smtp.max_message_size
    limit = request_limit(Settings())
    assert limit >= 4 * -(-size // 3) + 512 * 1024  # base64 plus room for the JSON around it
    assert limit <= 2 * size  # and no more than that
    small = Settings(smtp={"max_message_size": 200_000})
    assert request_limit(small) > 10 * 1024 * 1024  # a 10 MB file upload still fits
    assert request_limit(Settings(http={"max_request_bytes": 5000})) == 5000


def rfc822(size: int) -> bytes:
    head = (b"From: a@shop.example\r\nTo: r@example.org\r\nSubject: big\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n")
    line = b"x" * 76 + b"\r\n"
    return head + line * ((size - len(head)) // len(line))


def test_a_message_of_max_message_size_still_goes_through_base64_encoded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # the defaults: 20 MiB messages
    store = Store.open(settings.storage_url)
    account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(store, account.id, scopes=["send", "read"])
    raw = rfc822(settings.smtp.max_message_size - 1024)
    try:
        with serving(settings, store) as port, httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=60,
                headers={"Authorization": f"Bearer {key}"}) as c:
            r = c.post("/v1/send_raw", json={"raw": base64.b64encode(raw).decode(),
                                             "mail_from": "a@shop.example",
                                             "recipients": ["r@example.org"]})
            assert r.status_code == 200, r.text[:300]
            up = c.post("/v1/files", files={"file": ("big.bin", b"0" * (10 * 1024 * 1024))})
            assert up.status_code == 201, up.text[:300]
        mid = r.json()["data"][0]["details"]["message_id"]
        assert store.get_raw(mid).endswith(raw)
    finally:
        store.close()
