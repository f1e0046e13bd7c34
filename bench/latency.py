"""Final-dot → 250 latency of Postroom's plain SMTP port under concurrent sessions.

Each of --sessions connections sends messages back to back (EHLO once, then MAIL, RCPT, DATA and
the message per transaction; --new-connection opens one connection per message instead) until
--count messages were sent or --time-limit seconds passed. The latency of one message is the
time from writing the message's final ".\\r\\n" to receiving the complete 250 reply; both ends
are timestamped in the protocol callbacks (no coroutine scheduling delay in between).

Without --port, a fresh Postroom (empty data dir, delivery off) is started in a temporary
directory and stopped at the end; its CPU time per message is reported too.

    .venv/bin/python bench/latency.py                       # 50 sessions, 20,000 × 2 KB
    .venv/bin/python bench/latency.py --port 2525 -n 5000   # against a server you started
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from postroom_server import PostroomServer, cpu_seconds, descendants, machine_jiffies


def make_message(size: int, n: int, session: int) -> bytes:
    """RFC 5322 message of exactly `size` bytes (CRLF lines), ending in the final '.' line."""
    head = (
        f"From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: latency {session}-{n}\r\n"
        f"Message-ID: <lat-{session}-{n}-{os.getpid()}@bench.test>\r\n"
        "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * max(0, (size - len(head)) // len(line))
    body += b"y" * max(0, size - len(head) - len(body) - 2) + b"\r\n"
    return head + body + b".\r\n"


class SMTPClient(asyncio.Protocol):
    """Minimal SMTP client: replies are parsed and timestamped in data_received."""

    def __init__(self) -> None:
        self.buffer = b""
        self.lines: list[bytes] = []
        self.waiters: deque[asyncio.Future[tuple[int, float]]] = deque()
        self.replies: deque[tuple[int, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self.lines.append(line)
            if len(line) >= 4 and line[3:4] == b"-":
                continue  # continuation of a multi-line reply
            code = int(line[:3]) if line[:3].isdigit() else 0
            self.lines = []
            if self.waiters:
                self.waiters.popleft().set_result((code, now))
            else:
                self.replies.append((code, now))

    def connection_lost(self, exc: Exception | None) -> None:
        for w in self.waiters:
            if not w.done():
                w.set_exception(ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def reply(self) -> asyncio.Future[tuple[int, float]]:
        fut: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
        if self.replies:
            fut.set_result(self.replies.popleft())
        else:
            self.waiters.append(fut)
        return fut

    async def command(self, line: bytes, expect: int) -> tuple[int, float]:
        assert self.transport is not None
        self.transport.write(line)
        code, at = await self.reply()
        if code != expect:
            raise SMTPError(f"{line.strip()!r}: expected {expect}, got {code}")
        return code, at


class SMTPError(Exception):
    pass


@dataclass
class Shared:
    remaining: int
    deadline: float
    size: int
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    errors: list[str] = field(default_factory=list)

    def take(self) -> bool:
        if self.remaining <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.remaining -= 1
        return True


async def connect(host: str, port: int) -> SMTPClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(SMTPClient, host, port)
    code, _ = await client.reply()
    if code != 220:
        raise SMTPError(f"greeting {code}")
    await client.command(b"EHLO latency.bench.test\r\n", 250)
    return client


async def send_one(client: SMTPClient, message: bytes) -> tuple[float, float]:
    """One transaction; returns (when the final dot was written, seconds from then to the 250)."""
    await client.command(b"MAIL FROM:<a@example.com>\r\n", 250)
    await client.command(b"RCPT TO:<b@example.org>\r\n", 250)
    await client.command(b"DATA\r\n", 354)
    assert client.transport is not None
    client.transport.write(message)  # ends with ".\r\n"; written in one call
    sent = time.perf_counter()
    code, at = await client.reply()
    if code != 250:
        raise SMTPError(f"end of data: expected 250, got {code}")
    return sent, at - sent


async def session(index: int, args: argparse.Namespace, port: int, shared: Shared) -> None:
    client: SMTPClient | None = None
    n = 0
    try:
        while shared.take():
            if client is None:
                client = await connect(args.host, port)
            shared.latencies.append(await send_one(client, make_message(args.size, n, index)))
            n += 1
            if args.new_connection:
                await client.command(b"QUIT\r\n", 221)
                assert client.transport is not None
                client.transport.close()
                client = None
    except (OSError, SMTPError) as e:
        shared.errors.append(f"session {index}: {e}")
    finally:
        if client is not None and client.transport is not None:
            with contextlib.suppress(OSError, SMTPError, asyncio.TimeoutError):
                await asyncio.wait_for(client.command(b"QUIT\r\n", 221), 5)
            client.transport.close()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


async def run(args: argparse.Namespace, port: int) -> Shared:
    start = time.perf_counter()
    shared = Shared(remaining=args.count, deadline=start + args.time_limit, size=args.size)
    tasks = [asyncio.create_task(session(i, args, port, shared)) for i in range(args.sessions)]
    # the deadline stops new messages; this bounds the wait for ones in flight
    _, pending = await asyncio.wait(tasks, timeout=args.time_limit + 30)
    for t in pending:
        t.cancel()
    if pending:
        shared.errors.append(f"{len(pending)} sessions still busy after the time limit")
    return shared


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, help="use a running server (default: start a fresh Postroom)")
    ap.add_argument("--sessions", "-s", type=int, default=50)
    ap.add_argument("--count", "-n", type=int, default=20000, help="messages in total")
    ap.add_argument("--size", type=int, default=2048, help="message size in bytes")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds; no new messages after it")
    ap.add_argument("--new-connection", action="store_true", help="one connection per message")
    ap.add_argument("--processes", type=int, default=1, help="[smtp] processes of the fresh server")
    ap.add_argument("--server-port", type=int, default=12610, help="plain port of the fresh server")
    args = ap.parse_args()

    server: PostroomServer | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    port = args.port
    if port is None:
        tmp = tempfile.TemporaryDirectory(prefix="postroom-latency-", dir="/var/tmp")
        server = PostroomServer(Path(tmp.name), port=args.server_port, http_port=args.server_port + 1,
                                processes=args.processes)
        server.start()
        port = server.port
    try:
        pids = descendants(server.pid) if server else []
        cpu0, (busy0, total0) = cpu_seconds(pids), machine_jiffies()
        t0 = time.perf_counter()
        shared = asyncio.run(run(args, port))
        elapsed = time.perf_counter() - t0
        cpu1, (busy1, total1) = cpu_seconds(pids), machine_jiffies()
        stored = server.stored_messages() if server else None
    finally:
        if server:
            server.stop()
        if tmp:
            tmp.cleanup()

    lat = sorted(x * 1000 for _, x in shared.latencies)
    first = min((t for t, _ in shared.latencies), default=0.0)
    warm = [x * 1000 for t, x in shared.latencies if t - first >= 1.0]
    count = len(lat)
    mode = "new connection per message" if args.new_connection else "connections reused"
    print(f"target: {'fresh Postroom, processes=' + str(args.processes) if server else f'port {port}'}"
          f"; {args.sessions} sessions, {args.size} bytes, {mode}")
    print(f"count: {count}  errors: {len(shared.errors)}  elapsed: {elapsed:.2f} s  "
          f"rate: {count / elapsed:,.0f} msgs/s")
    if lat:
        print(f"final-dot→250 ms: p50 {percentile(lat, 50):.1f}  p90 {percentile(lat, 90):.1f}  "
              f"p99 {percentile(lat, 99):.1f}  max {lat[-1]:.1f}  mean {statistics.fmean(lat):.1f}")
    if warm:
        print(f"  without the first second: p99 {percentile(sorted(warm), 99):.1f}  max {max(warm):.1f}")
    print(f"machine CPU busy: {100 * (busy1 - busy0) / max(1, total1 - total0):.0f} % of {os.cpu_count()} cores")
    if server and count:
        print(f"server CPU: {(cpu1 - cpu0) / count * 1e6:,.0f} µs/msg ({(cpu1 - cpu0) / elapsed:.2f} cores)")
    if stored is not None:
        print(f"stored in Postroom: {stored}")
    for e in shared.errors[:10]:
        print("error:", e, file=sys.stderr)
    ok = count > 0 and not shared.errors and (stored is None or stored == count)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
