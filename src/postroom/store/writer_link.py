"""The ingress side of the writer process: hand an accepted message over, await its commit.

Why a process of its own (writer_process.py): in the ingress process, the group-commit writer
thread and the SMTP event loop took turns at one interpreter lock. The writer gave it up around
every SQLite call (about 20 times a commit) and each time waited for the busy loop to give it
back, and the loop paid for those switches too: at 10 sessions a commit took twice its own
time and the loop ~70 µs more CPU per message. Over a Unix socket, each message costs the loop
one write and its share of one read of the replies.

Frames, both ways: a 4-byte big-endian length, then a `marshal` payload. Request: (seq,
deadline, the fields of each NewMessage that commit together). Reply: (seqs, codes), one per
commit and connection. marshal, not JSON, because it costs a fifth as much; not pickle, because
loading runs no code. Both ends are this interpreter, and the socket is private (mode 0600 in
data_dir, like the database).

The deadline is the caller's `time.monotonic()` plus its commit timeout: CLOCK_MONOTONIC is
one clock for every process of the machine, so the writer drops a unit still waiting at its
deadline, as the thread writer does. The caller stops waiting at the same moment (451); a unit
already inside a transaction may still commit: a duplicate on the client's retry, never a loss.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import struct
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from postroom.model.records import NewMessage
from postroom.store.commit import give_up, late_reason, validate
from postroom.store.errors import BatchTooLarge, InvalidData, StorageFull, StoreUnavailable

LEN = struct.Struct(">I")
#: Reply codes.
OK, FULL, UNAVAILABLE, DROPPED, INVALID, LOST = range(6)
#: The most bytes one request may take (SMTP sends a big message's head; its rest is spooled to
#: a file the writer reads; an HTTP request of many personalised copies is the largest).
MAX_FRAME = 256 << 20
CONNECT_SECONDS = 10.0


def socket_path(data_dir: Path) -> Path:
    """Where the writer process listens: beside the default database, private to its user."""
    return data_dir.resolve() / "writer.sock"


_dir_fds: dict[Path, int] = {}


def address(path: Path) -> str:
    """`path` as bind() and connect() take it. A Unix socket's path holds at most 107 bytes;
    a longer one is reached through a descriptor of its directory (/proc/self/fd/N/NAME),
    kept open for the life of the process."""
    if len(os.fsencode(str(path))) < 100:
        return str(path)
    fd = _dir_fds.get(path.parent)
    if fd is None:
        fd = _dir_fds[path.parent] = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}"


def encode(seq: int, deadline: float, messages: Sequence[NewMessage]) -> bytes:
    """One request: all of `messages` commit together, or none of them."""
    payload = marshal.dumps((seq, deadline, tuple(_fields(m) for m in messages)))
    return LEN.pack(len(payload)) + payload


def _fields(m: NewMessage) -> tuple[Any, ...]:
    return (
        m.id, m.account_id, m.mail_from, tuple(m.recipients), m.raw, m.header_from, m.subject,
        m.message_id_header, m.source, m.client_ip, dict(m.options),
        m.not_before.isoformat() if m.not_before else None, m.body_path, m.body_offset,
        {k: v.isoformat() for k, v in m.recipient_not_before.items()},
    )


def decode(payload: bytes) -> tuple[int, float, tuple[NewMessage, ...]]:
    seq, deadline, messages = marshal.loads(payload)
    return seq, deadline, tuple(_message(*fields) for fields in messages)


def _message(id_: str, account_id: str, mail_from: str, recipients: tuple[str, ...],
             raw: bytes, header_from: str, subject: str, mid: str, source: str, client_ip: str,
             options: dict[str, Any], not_before: str | None, body_path: str | None,
             body_offset: int, per_rcpt: dict[str, str]) -> NewMessage:
    return NewMessage(
        id=id_, account_id=account_id, mail_from=mail_from, recipients=tuple(recipients),
        raw=raw, header_from=header_from, subject=subject, message_id_header=mid,
        source=source, client_ip=client_ip, options=options,
        not_before=datetime.fromisoformat(not_before) if not_before else None,
        body_path=body_path, body_offset=body_offset,
        recipient_not_before={k: datetime.fromisoformat(v) for k, v in per_rcpt.items()},
    )


def frames(buf: bytearray) -> tuple[list[bytes], int]:
    """The complete payloads at the start of `buf`, and how many bytes they took."""
    out, pos, end = [], 0, len(buf)
    while end - pos >= 4:
        (n,) = LEN.unpack_from(buf, pos)
        if n > MAX_FRAME:
            raise ValueError(f"frame of {n} bytes announced")
        if end - pos - 4 < n:
            break
        out.append(bytes(buf[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out, pos


def _raise_for(code: int) -> None:
    if code == FULL:
        raise StorageFull("storage full")
    if code == DROPPED:
        raise StoreUnavailable("the commit did not start before its deadline (it was dropped)")
    if code == INVALID:
        raise InvalidData("the writer process refused this message's data (see its log)")
    if code == LOST:
        raise StoreUnavailable("the connection to the writer process was lost (the message"
                               " may still have been committed)")
    raise StoreUnavailable("the writer process could not commit")


class _Link(asyncio.Protocol):
    """One connection to the writer; settles `pending` futures from the replies."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        try:
            payloads, used = frames(buf)
        except ValueError:
            assert self.transport is not None
            self.transport.abort()
            return
        del buf[:used]
        pending = self.pending
        for payload in payloads:
            seqs, codes = marshal.loads(payload)
            for seq, code in zip(seqs, codes, strict=True):
                future = pending.pop(seq, None)
                if future is not None and not future.done():
                    future.set_result(code)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for future in self.pending.values():
            if not future.done():
                future.set_result(LOST)
        self.pending.clear()


class RemoteEnqueue:
    """`enqueue` goes to the writer process; everything else is the local store's."""

    def __init__(self, store: Any, path: Path) -> None:
        self._store, self.path = store, path
        self._link: _Link | None = None
        self._next = 0
        self._connecting: asyncio.Lock | None = None
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def connect(self, until: float | None = None) -> _Link:
        """The open link, or a new one, retried until `until` (monotonic; default: 10 s from
        now) while the writer is starting or being restarted. Callers queue for one attempt
        at a time, each giving up at its own `until`."""
        until = time.monotonic() + CONNECT_SECONDS if until is None else until
        link = self._link
        if link is not None and link.transport is not None:
            return link
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            loop = asyncio.get_running_loop()
            while True:
                if self._closed:
                    raise OSError("the link to the writer process is closed (shutting down)")
                link = self._link
                if link is not None and link.transport is not None:
                    return link
                try:
                    _, link = await loop.create_unix_connection(_Link,
                                                                address(self.path))
                except OSError:
                    if time.monotonic() >= until:
                        raise
                    await asyncio.sleep(0.1)
                    continue
                self._link = link
                return link

    async def enqueue(self, message: NewMessage) -> None:
        await self._commit((message,))

    async def enqueue_batch(self, batch: Sequence[NewMessage]) -> None:
        """Several messages in one transaction, all or none (the HTTP API's sends)."""
        if batch:
            await self._commit(tuple(batch))

    async def _commit(self, batch: tuple[NewMessage, ...]) -> None:
        validate(batch)
        seconds = self._store.writer.commit_timeout
        started = time.monotonic()
        self._next += 1
        seq = self._next
        frame = encode(seq, started + seconds, batch)
        if len(frame) - LEN.size > MAX_FRAME:
            raise BatchTooLarge(f"{len(batch)} messages of {len(frame)} bytes in all are more"
                                f" than one commit takes ({MAX_FRAME} bytes): send fewer at"
                                " once")
        try:
            link = await self.connect(started + min(seconds, CONNECT_SECONDS))
        except OSError as exc:
            raise StoreUnavailable("the writer process is not reachable") from exc
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        left = started + seconds - time.monotonic()
        if left <= 0:
            raise StoreUnavailable(late_reason(seconds, True))
        link.pending[seq] = future
        assert link.transport is not None
        link.transport.write(frame)
        deadline = loop.call_later(left, give_up, future, seconds)
        try:
            code = await future
        finally:
            deadline.cancel()
            link.pending.pop(seq, None)
        if code != OK:
            _raise_for(code)

    def disconnect(self) -> None:
        """Close the link for good (the writer process ends once every ingress has closed its
        own); later enqueues raise StoreUnavailable (451)."""
        self._closed = True
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()
