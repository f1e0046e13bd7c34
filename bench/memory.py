"""Peak memory of Postroom while 20 clients send one 20 MB message each, all at once.

Starts a fresh Postroom (max_message_size 21 MB, delivery off), opens --clients connections, takes
each through EHLO/MAIL/RCPT/DATA, and once every client holds its 354 they all stream their
message simultaneously (--chunk bytes per write, waiting for the socket to drain). A thread samples
VmRSS of the server and all its descendants from /proc every --interval seconds; at the end the
script prints the sampled peak (sum over processes) and each process's VmHWM (kernel-kept peak).
Exit status 0 only if every message got 250, the store holds them all, and the peak is under
--limit-mb.

    .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from postroom_server import PostroomServer, descendants, status_kb

MB = 1024 * 1024


@dataclass
class Sampler:
    """Samples the RSS of a process tree in a thread (independent of the client's event loop)."""

    root_pid: int
    interval: float
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, kB summed)
    hwm_kb: dict[int, int] = field(default_factory=dict)  # last seen VmHWM per pid
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        t0 = time.monotonic()
        pids = descendants(self.root_pid)
        last_scan = t0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_scan > 1.0:  # pick up processes started later
                pids, last_scan = descendants(self.root_pid), now
            total = 0
            for pid in pids:
                total += status_kb(pid, "VmRSS")
                hwm = status_kb(pid, "VmHWM")
                if hwm:
                    self.hwm_kb[pid] = hwm
            self.samples.append((now - t0, total))
            self.stop.wait(self.interval)

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)


def role(pid: int) -> str:
    """What a server process is, from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "resource_tracker" in cmd:
        return "multiprocessing tracker"
    if "spawn_main" in cmd:
        return "spawned child"
    return "postroom serve (main)" if "serve" in cmd else cmd[:22]


async def expect(reader: asyncio.StreamReader, code: int) -> str:
    """Read one (possibly multi-line) reply; raise unless its code is `code`."""
    while True:
        line = (await reader.readline()).decode(errors="replace")
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != "-":
            break
    if not line.startswith(str(code)):
        raise RuntimeError(f"expected {code}, got {line.strip()!r}")
    return line.strip()


def body_block(size: int) -> bytes:
    """`size` bytes of 78-byte CRLF lines (no line starts with '.')."""
    line = b"m" * 76 + b"\r\n"
    block = line * (size // len(line))
    return block + b"z" * max(0, size - len(block) - 2) + b"\r\n"


async def client(i: int, port: int, body: bytes, chunk: int, go: asyncio.Event,
                 ready: list[int]) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await expect(reader, 220)
        writer.write(b"EHLO memory.bench.test\r\n")
        await expect(reader, 250)
        writer.write(f"MAIL FROM:<a@example.com> SIZE={len(body) + 300}\r\n".encode())
        await expect(reader, 250)
        writer.write(b"RCPT TO:<b@example.org>\r\n")
        await expect(reader, 250)
        writer.write(b"DATA\r\n")
        await expect(reader, 354)
        ready.append(i)
        await go.wait()
        head = (f"From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: big {i}\r\n"
                f"Message-ID: <big-{i}-{time.time_ns()}@bench.test>\r\n\r\n").encode()
        writer.write(head)
        view = memoryview(body)
        for off in range(0, len(view), chunk):
            writer.write(view[off:off + chunk])
            await writer.drain()
        writer.write(b".\r\n")
        reply = await expect(reader, 250)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return reply
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def send_all(args: argparse.Namespace, port: int) -> list[str | BaseException]:
    body = body_block(args.size_mb * MB)
    go, ready = asyncio.Event(), []
    tasks = [asyncio.create_task(client(i, port, body, args.chunk, go, ready)) for i in range(args.clients)]
    deadline = time.monotonic() + 30
    while len(ready) < args.clients and time.monotonic() < deadline and not any(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    go.set()  # everyone streams at once
    _, pending = await asyncio.wait(tasks, timeout=args.time_limit)
    for t in pending:
        t.cancel()
    out: list[str | BaseException] = []
    for t in tasks:
        if t in pending:
            out.append(TimeoutError("time limit"))
        elif t.exception() is not None:
            out.append(t.exception())  # type: ignore[arg-type]
        else:
            out.append(t.result())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--size-mb", type=int, default=20, help="body size of each message, MiB")
    ap.add_argument("--max-message-size-mb", type=int, default=21, help="server's max_message_size, MiB")
    ap.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per client write")
    ap.add_argument("--interval", type=float, default=0.05, help="RSS sampling period, seconds")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds for all clients")
    ap.add_argument("--processes", type=int, default=1, help="[smtp] processes")
    ap.add_argument("--port", type=int, default=12620, help="plain port of the fresh server")
    ap.add_argument("--limit-mb", type=float, default=300.0, help="target for the peak")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="postroom-memory-", dir="/var/tmp") as tmp:
        server = PostroomServer(Path(tmp), port=args.port, http_port=args.port + 1,
                                processes=args.processes,
                                max_message_size=args.max_message_size_mb * MB)
        server.start()
        sampler = Sampler(server.pid, args.interval)
        thread = threading.Thread(target=sampler.run, daemon=True)
        try:
            time.sleep(1.0)  # settle after start (children are spawned right after "ready")
            idle = {p: status_kb(p, "VmRSS") for p in descendants(server.pid)}
            roles = {p: role(p) for p in idle}
            thread.start()
            t0 = time.monotonic()
            results = asyncio.run(send_all(args, server.port))
            elapsed = time.monotonic() - t0
            time.sleep(0.5)  # catch what happens right after the last reply
            sampler.stop.set()
            thread.join(5)
            pids = descendants(server.pid)
            stored = server.stored_messages()
        finally:
            server.stop()

    ok = [r for r in results if isinstance(r, str) and r.startswith("250")]
    hwm_total = sum(sampler.hwm_kb.values())
    print(f"{args.clients} clients × {args.size_mb} MiB at once; processes={args.processes}; "
          f"elapsed {elapsed:.1f} s ({args.clients * args.size_mb / elapsed:.0f} MiB/s)")
    print(f"acknowledged with 250: {len(ok)}/{args.clients}; stored in Postroom: {stored}")
    for r in results:
        if not (isinstance(r, str) and r.startswith("250")):
            print(f"  failed: {r!r}", file=sys.stderr)
    print(f"server processes: {len(pids)}; RSS idle before: {sum(idle.values()) / 1024:.1f} MB")
    for pid, kb in sorted(sampler.hwm_kb.items()):
        print(f"  {pid} {roles.get(pid, 'started later'):<22} idle {idle.get(pid, 0) / 1024:6.1f} MB"
              f"  VmHWM {kb / 1024:6.1f} MB")
    print(f"peak RSS, sampled every {args.interval * 1000:.0f} ms ({len(sampler.samples)} samples): "
          f"{sampler.peak_kb / 1024:.1f} MB")
    print(f"VmHWM (kernel peak) summed over the processes: {hwm_total / 1024:.1f} MB")
    peak_mb = max(sampler.peak_kb, hwm_total) / 1024
    met = peak_mb < args.limit_mb
    print(f"target < {args.limit_mb:.0f} MB: {'met' if met else 'NOT met'} (peak {peak_mb:.1f} MB)")
    return 0 if met and len(ok) == args.clients and stored == args.clients else 1


if __name__ == "__main__":
    sys.exit(main())
