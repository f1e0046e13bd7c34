"""One writer for many ingress processes on SQLite: children hand their enqueues to the parent.

Why: SQLite admits one writer at a time and makes the others sleep-poll for the lock, so several
processes committing to the same file ran slower than one. With `[smtp] processes = N`, the
parent keeps the only group-commit writer and listens on a Unix socket in data_dir; each child
sends its accepted messages there and gets the commit result back. The child still answers 250
only after the parent's commit (the reply travels back over the socket), so the durability
promise is unchanged. Reads stay local: WAL lets every process read concurrently.

Frame: 4-byte big-endian header length, 4-byte raw length, JSON header, raw message bytes.
Replies: 4-byte length + JSON {"id", "error": null | "full" | "unavailable"}. No pickle: the
socket is private (mode 0600), but parsing stays boring anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

from postroom.model.records import NewMessage
from postroom.store.commit import give_up
from postroom.store.errors import StorageFull, StoreUnavailable

_HEAD = struct.Struct(">II")
_LEN = struct.Struct(">I")


def _encode(req_id: int, m: NewMessage) -> bytes:
    header = json.dumps({
        "req": req_id, "id": m.id, "account_id": m.account_id, "mail_from": m.mail_from,
        "recipients": list(m.recipients), "header_from": m.header_from, "subject": m.subject,
        "message_id_header": m.message_id_header, "source": m.source, "client_ip": m.client_ip,
        "options": m.options, "not_before": m.not_before.isoformat() if m.not_before else None,
        "body_path": m.body_path,  # same machine: the parent reads the child's spool file
        "body_offset": m.body_offset,
        "recipient_not_before": {k: v.isoformat() for k, v in m.recipient_not_before.items()},
    }).encode()
    return _HEAD.pack(len(header), len(m.raw)) + header + m.raw


def _decode(header: bytes, raw: bytes) -> tuple[int, NewMessage]:
    h = json.loads(header)
    not_before = datetime.fromisoformat(h["not_before"]) if h["not_before"] else None
    return h["req"], NewMessage(
        id=h["id"], account_id=h["account_id"], mail_from=h["mail_from"],
        recipients=tuple(h["recipients"]), raw=raw, header_from=h["header_from"],
        subject=h["subject"], message_id_header=h["message_id_header"], source=h["source"],
        client_ip=h["client_ip"], options=h["options"], not_before=not_before,
        body_path=h["body_path"], body_offset=h["body_offset"],
        recipient_not_before={k: datetime.fromisoformat(v)
                              for k, v in h["recipient_not_before"].items()},
    )


class WriterServer:
    """In the parent: accept enqueues from children and commit them with the local store."""

    def __init__(self, store: Any, path: Path) -> None:
        self.store, self.path = store, path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                head = await reader.readexactly(_HEAD.size)
                hlen, rlen = _HEAD.unpack(head)
                header = await reader.readexactly(hlen)
                raw = await reader.readexactly(rlen)
                req, message = _decode(header, raw)
                task = asyncio.create_task(self._one(req, message, writer, lock))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _one(self, req: int, message: NewMessage, writer: asyncio.StreamWriter,
                   lock: asyncio.Lock) -> None:
        error = None
        try:
            await self.store.enqueue(message)
        except StorageFull:
            error = "full"
        except Exception:
            error = "unavailable"
        body = json.dumps({"id": req, "error": error}).encode()
        async with lock:
            writer.write(_LEN.pack(len(body)) + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()


class RemoteEnqueue:
    """In a child: `enqueue` goes to the parent; everything else is the local store's."""

    def __init__(self, store: Any, path: Path) -> None:
        self._store, self.path = store, path
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[str | None]] = {}
        self._next = 0
        self._connecting: asyncio.Lock | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                for attempt in range(50):  # the parent may still be starting its listener
                    try:
                        reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                        break
                    except OSError:
                        if attempt == 49:
                            raise
                        await asyncio.sleep(0.1)
                asyncio.get_running_loop().create_task(self._read_replies(reader))
            return self._writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                reply = json.loads(await reader.readexactly(n))
                future = self._pending.pop(reply["id"], None)
                if future is not None and not future.done():
                    future.set_result(reply["error"])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_result("unavailable")
            self._pending.clear()
            self._writer = None

    async def enqueue(self, message: NewMessage) -> None:
        try:
            writer = await self._connect()
        except OSError as exc:
            raise StoreUnavailable("the writer process is not reachable") from exc
        self._next += 1
        req = self._next
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending[req] = future
        writer.write(_encode(req, message))
        # The parent's writer has the same deadline; this one also covers a parent that hangs.
        seconds = self._store.writer.commit_timeout
        deadline = loop.call_later(seconds, give_up, future, seconds)
        try:
            error = await future
        finally:
            deadline.cancel()
            self._pending.pop(req, None)
        if error == "full":
            raise StorageFull("storage full")
        if error is not None:
            raise StoreUnavailable("commit failed in the writer process")
