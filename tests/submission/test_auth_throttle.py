"""The SMTP AUTH throttle holds under parallel and interleaved attempts (issue 2: repeated
failures from one IP are throttled without slowing other clients).

The real server engine and `SubmissionService` on 127.0.0.1 over a real SQLite store; its key
lookups may be slowed down (`SlowLookups`, a busy disk) so parallel attempts overlap for sure.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from postroom.admin import accounts as admin_accounts
from postroom.smtp.server import ConnectionLimiter, ListenerConfig, ServerOptions, start_listeners
from postroom.store import Store
from postroom.store.errors import StoreUnavailable
from postroom.submission.service import SubmissionService
from postroom.submission.throttle import AuthThrottle
from support.databases import sqlite_url

BAD = "pr_badbadbadbadbadbadbad"


class SlowLookups:
    """The real store, whose API key lookups take `delay` seconds more (the first `broken`
    raise StoreUnavailable instead); counts them."""

    def __init__(self, store: Store, delay: float, broken: int = 0) -> None:
        self.store, self.delay, self.broken, self.lookups = store, delay, broken, 0
        self._lock = threading.Lock()

    def find_api_key(self, key_hash: str) -> Any:
        with self._lock:
            self.lookups += 1
            n = self.lookups
        time.sleep(self.delay)
        if n <= self.broken:
            raise StoreUnavailable("the store is not answering")
        return self.store.find_api_key(key_hash)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Listener:
    """`with Listener(store, limit) as port:` the plain SMTP listener (AUTH allowed without
    TLS) in a thread of its own; key lookups run on `workers` threads, as `to_thread` does."""

    def __init__(self, store: Any, limit: int, workers: int = 4) -> None:
        self.store, self.limit = store, limit
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(ThreadPoolExecutor(workers))
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []

    async def _start(self) -> int:
        opts = ServerOptions(
            hostname="postroom.test", max_message_size=1_000_000, max_recipients=10,
            allow_plaintext_auth=True, idle_timeout=30, data_timeout=30, ssl_context=None,
            limiter=ConnectionLimiter(1000, 1000))
        service = SubmissionService(self.store, hostname="postroom.test",
                                    throttle=AuthThrottle(self.limit, 300))
        self._servers = await start_listeners(
            opts, [ListenerConfig("plain", "127.0.0.1", 0)], lambda: service)
        return int(self._servers[0].sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def __enter__(self) -> int:
        self._thread.start()
        started: Future[int] = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        return started.result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(sqlite_url(tmp_path)) as opened:
        yield opened


def new_key(store: Store, name: str) -> str:
    admin_accounts.create_account(store, name, sender_domains=[f"{name}.example"],
                                  sender_addresses=[], allow_ips=[])
    return admin_accounts.create_key(store, name, scopes=["send"])[1]


def connect(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))
    client.ehlo("x")
    return client


def auth(client: smtplib.SMTP, key: str) -> int:
    return client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0apikey\0{key}".encode()).decode())[0]


def at_once(port: int, keys: list[str]) -> list[int]:
    """AUTH with each key on a connection of its own, all sent at the same moment."""
    clients = [connect(port) for _ in keys]
    ready = threading.Barrier(len(keys))

    def one(client: smtplib.SMTP, key: str) -> int:
        ready.wait()
        return auth(client, key)

    try:
        with ThreadPoolExecutor(len(keys)) as pool:
            return list(pool.map(one, clients, keys))
    finally:
        for client in clients:
            client.close()


def test_parallel_guesses_from_one_ip_are_evaluated_at_most_limit_times(store: Store) -> None:
    slow = SlowLookups(store, 0.3)
    with Listener(slow, limit=3) as port:
        codes = at_once(port, [BAD] * 20)
    assert slow.lookups == 3
    assert sorted(codes) == [454] * 17 + [535] * 3


def test_a_valid_login_between_guesses_does_not_reset_the_count(store: Store) -> None:
    own = new_key(store, "attacker")
    slow = SlowLookups(store, 0.0)
    with Listener(slow, limit=3) as port:
        guesser, logins, guesses = connect(port), [], []
        for _ in range(5):
            guesses.append(auth(guesser, BAD))
            with connect(port) as good:  # one AUTH per session: a new one for each login
                logins.append(auth(good, own))
        guesser.close()
    assert guesses == [535, 535, 535, 454, 454]
    assert logins == [235, 235, 454, 454, 454]  # the IP is throttled, whatever the key
    assert slow.lookups == 5  # three guesses and two logins were evaluated, no more


def test_many_valid_logins_at_once_from_one_ip_all_succeed(store: Store) -> None:
    """A client's connection pool opening at once waits for a free slot rather than a 454."""
    key = new_key(store, "pool")
    with Listener(SlowLookups(store, 0.05), limit=3) as port:
        assert at_once(port, [key] * 12) == [235] * 12


def test_a_flood_from_one_ip_does_not_slow_another_ip(store: Store) -> None:
    """Unbounded parallel lookups from one IP would hold every lookup thread (4 here)."""
    key = new_key(store, "other")
    slow = SlowLookups(store, 0.5)
    with Listener(slow, limit=3, workers=4) as port:
        other = connect(port, "127.0.0.2")
        with ThreadPoolExecutor(1) as pool:
            flood = pool.submit(at_once, port, [BAD] * 20)
            while slow.lookups < 3:  # the flood has begun
                time.sleep(0.01)
            start = time.monotonic()
            assert auth(other, key) == 235
            took = time.monotonic() - start
            flood.result(30)
        other.close()
    assert took < 1.4, took  # one lookup (0.5 s), not a turn behind the flood's


def test_lookups_the_store_could_not_answer_are_not_counted_as_failures(store: Store) -> None:
    key = new_key(store, "patient")
    with Listener(SlowLookups(store, 0.0, broken=3), limit=2) as port:
        codes = []
        for _ in range(4):
            with connect(port) as client:
                codes.append(auth(client, key))
    assert codes == [451, 451, 451, 235]


def test_a_success_takes_back_only_its_own_attempt() -> None:
    now = [0.0]
    throttle = AuthThrottle(3, 60, clock=lambda: now[0])
    assert throttle.begin("ip") is not None
    assert throttle.failed("ip") == 0
    now[0] = 1.0
    mine = throttle.begin("ip")
    assert mine is not None and throttle.begin("ip") is not None  # two running, one failure
    assert throttle.begin("ip") is None and throttle.begin("other") is not None
    throttle.succeeded("ip", mine)
    assert throttle.begin("ip") is not None and throttle.begin("ip") is None
    now[0] = 60.5  # the first failure ages out, the later attempts stay
    assert throttle.begin("ip") is not None and throttle.begin("ip") is None
