"""Delivery under failure and concurrency: kill -9 mid-run, and two processes on one store."""

from __future__ import annotations

import asyncio
import smtplib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.delivery.harness import (
    dns_world,
    message_bytes,
    start_server,
    statuses,
    submit,
    wait_until,
)

from support.smtp_sinks import SmtpSink

pytestmark = pytest.mark.slow


def slow_sink(delay: float) -> SmtpSink:
    """A sink that takes `delay` seconds per message, so a run lasts long enough to cut."""
    sink = SmtpSink()
    fast = sink.handler.handle_DATA

    async def handle_data(*args: Any) -> str:
        await asyncio.sleep(delay)
        return await fast(*args)

    sink.handler.handle_DATA = handle_data  # type: ignore[method-assign]
    return sink


def counts(sink: SmtpSink) -> Counter[str]:
    return Counter(r for m in sink.messages for r in m.rcpt_tos)


def submit_many(server: Any, n: int, rcpts: Any) -> dict[str, list[str]]:
    sent = {}
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("tester")
        for i in range(n):
            sent[submit(server, rcpts(i), message_bytes(f"m{i}"), client=c)] = rcpts(i)
    return sent


def all_delivered(server: Any, sent: dict[str, list[str]]) -> bool:
    return all(set(statuses(server, mid).values()) == {"delivered"} for mid in sent)


def test_kill_9_mid_run_loses_nothing_and_repeats_only_the_in_flight(tmp_path: Path) -> None:
    workers, batch = 2, 4
    with dns_world() as dns, slow_sink(0.02) as sink:
        server = start_server(tmp_path, dns, sink.port, workers=workers, batch_size=batch,
                              lease_seconds=2.0, max_connections_per_host=2)
        try:
            sent = submit_many(server, 120, lambda i: [f"r{i}a@rcpt.test", f"r{i}b@other.test"])
            wait_until(lambda: len(sink.messages) >= 30, 20, "deliveries to start")
            server.kill()
            at_kill = len(sink.messages)
            assert at_kill < 240, "everything was delivered before the kill: nothing tested"
            server.start()
            wait_until(lambda: all_delivered(server, sent), 40, "every recipient delivered",
                       step=0.5)
        finally:
            server.stop()
    got = counts(sink)
    wanted = {r for rcpts in sent.values() for r in rcpts}
    assert set(got) == wanted, f"lost: {wanted - set(got)}"
    twice = [r for r, n in got.items() if n > 1]
    assert all(n <= 2 for n in got.values())
    assert len(twice) <= workers * batch, f"{len(twice)} recipients delivered twice: {twice}"


def test_two_processes_on_one_store_never_deliver_a_recipient_twice(tmp_path: Path) -> None:
    with dns_world() as dns, slow_sink(0.005) as sink:
        first = start_server(tmp_path / "one", dns, sink.port, workers=4, batch_size=5)
        second = start_server(tmp_path / "two", dns, sink.port, workers=4, batch_size=5,
                              storage_url=first.storage_url, account=False)
        try:
            # both delivery processes must be claiming before the mail arrives, or one of them
            # may legitimately take everything and the test would prove nothing
            wait_until(lambda: "delivery: 4 workers" in first.log()
                       and "delivery: 4 workers" in second.log(), 20, "both delivery processes")
            sent = submit_many(first, 100, lambda i: [f"p{i}@rcpt.test"])
            wait_until(lambda: all_delivered(first, sent), 40, "every recipient delivered",
                       step=0.5)
        finally:
            first.stop()
            second.stop()
    got = counts(sink)
    assert set(got) == {f"p{i}@rcpt.test" for i in range(100)}
    assert max(got.values()) == 1, [r for r, n in got.items() if n > 1]
    assert "delivered" in first.log() and "delivered" in second.log()
