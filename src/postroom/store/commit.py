"""Group commit: one writer thread turns many concurrent enqueues into few fsync'd transactions.

Why: every accepted message must be durable before the client hears 250/2xx, and a durable
commit costs an fsync (milliseconds). One transaction per message would cap ingress at a few
hundred messages a second and, on SQLite, serialize every SMTP session on the file lock. The
writer instead drains whatever is pending, writes it all in ONE transaction, commits once and
then wakes every caller. Under load, batches grow by themselves; when idle, a lone message is
committed immediately (no timer, no added latency).

Failure handling (an improvement on "fail the whole batch"): a batch that fails because of
the data (duplicate message id, a value too long for its column, unencodable options) is
retried unit by unit, so only the offending caller gets the error and its neighbours are not
punished for it. Environmental failures (StorageFull, StoreUnavailable) fail every caller in
the batch at once: retrying would only repeat the failure. Either way a unit is all-or-nothing: message, recipients, events and usage
are written together or not at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from postroom.model.records import EventType, NewMessage, RecipientStatus
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.errors import StorageFull, StoreUnavailable
from postroom.store.schema import account_usage, events, message_chunks, messages, recipients

Done = Callable[[BaseException | None], None]


@dataclass(slots=True)
class _Unit:
    """What one caller asked for: all of it commits, or none of it."""

    messages: Sequence[NewMessage]
    accepted_at: datetime
    done: Done


def validate(batch: Sequence[NewMessage]) -> None:
    """Reject malformed input in the caller, before it can poison a shared batch."""
    for message in batch:
        if not message.recipients:
            raise ValueError(f"message {message.id} has no recipients")
        rows.require_aware(message.not_before, "not_before")


def write_messages(db: Database, conn: Connection, units: Sequence[_Unit]) -> None:
    """Insert messages, recipients, their first events and usage counters for `units`."""
    message_rows: list[dict[str, Any]] = []
    recipient_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    usage: dict[tuple[str, str], int] = {}
    for unit in units:
        at = unit.accepted_at
        for msg in unit.messages:
            message_rows.append({
                "id": msg.id, "account_id": msg.account_id, "mail_from": msg.mail_from,
                "header_from": msg.header_from, "subject": msg.subject,
                "message_id_header": msg.message_id_header, "size": msg.size,
                "raw": msg.raw, "source": msg.source, "client_ip": msg.client_ip,
                "options": dict(msg.options), "created_at": at, "not_before": msg.not_before,
            })
            for address in msg.recipients:
                when = msg.recipient_not_before.get(address.lower(), msg.not_before) \
                    if msg.recipient_not_before else msg.not_before
                scheduled = when is not None and when > at
                status = RecipientStatus.SCHEDULED if scheduled else RecipientStatus.QUEUED
                kind = EventType.SCHEDULED if scheduled else EventType.QUEUED
                data = {"not_before": when.isoformat()} if when else {}
                recipient_rows.append({
                    "message_id": msg.id, "address": address, "domain": domain_of(address),
                    "status": status.value, "attempts": 0,
                    "next_attempt_at": when if scheduled else at,
                    "lease_owner": None, "lease_until": None, "last_reply": None,
                    "remote_host": None, "updated_at": at,
                })
                event_rows.append({
                    "type": kind.value, "message_id": msg.id, "recipient": address, "at": at,
                    "attempt": None, "remote_host": None, "reply": None, "data": data,
                })
            key = (msg.account_id, at.strftime("%Y-%m-%d"))
            usage[key] = usage.get(key, 0) + 1
    if not message_rows:
        return
    conn.execute(messages.insert(), message_rows)
    for unit in units:
        for msg in unit.messages:
            if msg.body_path:
                copy_chunks(conn, msg.id, msg.body_path, msg.body_offset)
    conn.execute(recipients.insert(), recipient_rows)
    conn.execute(events.insert(), event_rows)
    for (account_id, day), count in sorted(usage.items()):
        stmt = db.insert(account_usage).values(account_id=account_id, day=day, count=count)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["account_id", "day"],
            set_={"count": account_usage.c.count + stmt.excluded["count"]},
        ))


CHUNK = 1 << 20


def copy_chunks(conn: Connection, message_id: str, path: str, offset: int = 0) -> None:
    """Stream a spooled body into message_chunks, one MiB in memory at a time."""
    with open(path, "rb") as f:
        f.seek(offset)
        seq = 0
        while data := f.read(CHUNK):
            conn.execute(message_chunks.insert(), {"message_id": message_id, "seq": seq,
                                                   "data": data})
            seq += 1


def domain_of(address: str) -> str:
    """The lowercased part after the last @ ('' for a bare local part such as `postmaster`)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""


class GroupCommitWriter:
    """The dedicated writer thread (started on first use, stopped by `close`)."""

    def __init__(self, db: Database, *, max_messages: int = 1000,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self._db = db
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._pending: deque[_Unit] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Transactions committed successfully (the test of "batching really happens").
        self.commits = 0
        #: Units (callers) settled, successfully or not.
        self.units = 0
        #: The most units ever committed in one transaction.
        self.largest_batch = 0

    async def enqueue(self, batch: Sequence[NewMessage]) -> None:
        """Queue `batch` and return once it is committed (or raise the commit's error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(exc: BaseException | None) -> None:
            # RuntimeError: the caller's loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, exc)

        self._submit(batch, done)
        await future

    def enqueue_sync(self, batch: Sequence[NewMessage]) -> None:
        """Blocking variant for threads without an event loop (the HTTP API)."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def done(exc: BaseException | None) -> None:
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        self._submit(batch, done)
        future.result()

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is pending, then stop the thread. Later enqueues raise StoreUnavailable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _submit(self, batch: Sequence[NewMessage], done: Done) -> None:
        validate(batch)
        unit = _Unit(messages=tuple(batch), accepted_at=rows.utc_now(), done=done)
        with self._cond:
            if self._closed:
                raise StoreUnavailable("store is closed")
            self._pending.append(unit)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="postroom-store-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _take(self) -> list[_Unit]:
        """Everything pending, up to the caps (always at least one unit)."""
        batch: list[_Unit] = []
        count = size = 0
        while self._pending:
            unit = self._pending[0]
            count += len(unit.messages)
            size += sum(len(m.raw) for m in unit.messages)
            if batch and (count > self._max_messages or size > self._max_bytes):
                break
            batch.append(self._pending.popleft())
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._take()
            self._commit(batch)

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            with self._db.write() as conn:
                write_messages(self._db, conn, batch)
        except (StorageFull, StoreUnavailable) as exc:
            self._settle(batch, exc)  # the database's fault: everyone would fail alike
            return
        except Exception as exc:  # this data's fault (duplicate id, too long, unencodable...)
            if len(batch) == 1:
                self._settle(batch, exc)
            else:  # find the culprit: the other callers deserve their commit
                for unit in batch:
                    self._commit([unit])
            return
        self.commits += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        self._settle(batch, None)

    def _settle(self, batch: list[_Unit], exc: BaseException | None) -> None:
        for unit in batch:
            self.units += 1
            unit.done(_own_copy(exc) if exc is not None and len(batch) > 1 else exc)


def _own_copy(exc: BaseException) -> BaseException:
    """A separate exception object per caller, so tracebacks do not pile up on a shared one."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc
    copy.__cause__ = exc.__cause__ or exc
    return copy


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the write stands
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
