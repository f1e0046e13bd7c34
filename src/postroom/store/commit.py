"""Group commit: one writer thread turns many concurrent enqueues into few fsync'd transactions.

(`postroom serve` runs the same commit in a process of its own, writer_process.py; this
thread serves in-process callers and `[storage] writer_process = false`.)

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
the batch at once: retrying would only repeat the failure. Either way a unit is all-or-nothing:
message, recipients, events and usage are written together or not at all.

Deadline: a caller waits at most `commit_timeout` seconds for its commit, then gets
StoreUnavailable (SMTP 451, HTTP 503). The writer may be stuck in a transaction (a hung disk, or
another process holding the SQLite write lock, whose cross-process wait has no deadline of its
own). A unit still waiting in the queue is dropped at its deadline, so a client that retries
through a long stall does not pile up copies; only the units already inside the stuck
transaction are committed when it gets through, and for those the client's retry makes a
duplicate: never a loss, which is the safe direction for a mail queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from postroom.model.records import NewMessage
from postroom.store import rows
from postroom.store.engine import Database, KeptConnection
from postroom.store.errors import StorageFull, StoreUnavailable
from postroom.store.fastsql import for_dialect
from postroom.store.queue_rows import Unit as _Unit
from postroom.store.queue_rows import validate, write_messages

__all__ = ["COMMIT_TIMEOUT", "GroupCommitWriter", "commit_units", "validate", "write_messages"]

#: Seconds a caller waits for its commit (`[storage] commit_timeout`).
COMMIT_TIMEOUT = 60.0

class GroupCommitWriter:
    """The dedicated writer thread (started on first use, stopped by `close`)."""

    def __init__(self, db: Database, *, max_messages: int = 1000,
                 max_bytes: int = 64 * 1024 * 1024, commit_timeout: float = COMMIT_TIMEOUT) -> None:
        self._db = db
        self.commit_timeout = commit_timeout
        self._binds = for_dialect(db.engine.dialect)
        #: the writer thread's own connection (no pool checkout per commit)
        self._conn = KeptConnection(db)
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
        unit = self._submit(batch, loop=loop, future=future)
        deadline = loop.call_later(self.commit_timeout, self._give_up, unit)
        try:
            await future
        finally:
            deadline.cancel()

    def enqueue_sync(self, batch: Sequence[NewMessage]) -> None:
        """Blocking variant for threads without an event loop (the HTTP API)."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def done(exc: BaseException | None) -> None:
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        unit = self._submit(batch, done=done)
        try:
            future.result(timeout=self.commit_timeout)
        except concurrent.futures.TimeoutError:
            raise StoreUnavailable(late_reason(self.commit_timeout, self._drop(unit))) from None

    def _give_up(self, unit: _Unit) -> None:
        """A caller's deadline (a loop callback): fail it unless it was settled meanwhile."""
        assert unit.future is not None
        if not unit.future.done():
            give_up(unit.future, self.commit_timeout, dropped=self._drop(unit))

    def _drop(self, unit: _Unit) -> bool:
        """Take `unit` out of the queue; False when the writer already has it."""
        with self._cond:
            try:
                self._pending.remove(unit)
            except ValueError:
                return False
            return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is pending, then stop the thread. Later enqueues raise StoreUnavailable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _submit(self, batch: Sequence[NewMessage], **settle: Any) -> _Unit:
        validate(batch)
        unit = _Unit(messages=tuple(batch), accepted_at=rows.utc_now(), **settle)
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
        return unit

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
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closed:
                        self._cond.wait()
                    if not self._pending:
                        return
                    batch = self._take()
                self._commit(batch)
        finally:
            self._conn.close()

    def _commit(self, batch: list[_Unit]) -> None:
        results, transactions = commit_units(self._conn, self._binds, batch)
        self.commits += transactions
        if transactions == 1 and results.count(None) == len(batch):
            self.largest_batch = max(self.largest_batch, len(batch))
        self._settle(batch, results)

    def _settle(self, batch: list[_Unit], results: list[BaseException | None]) -> None:
        """Tell every caller; one `call_soon_threadsafe` per event loop, not per caller (each
        is a write to the loop's wake-up socket, and a wait for the interpreter lock)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, BaseException | None]]] = {}
        shared = len(batch) > 1
        for unit, exc in zip(batch, results, strict=True):
            self.units += 1
            own = _own_copy(exc) if exc is not None and shared else exc
            if unit.loop is not None:
                by_loop.setdefault(unit.loop, []).append((unit.future, own))
            elif unit.done is not None:
                unit.done(own)
        for loop, settled in by_loop.items():
            # RuntimeError: the caller's loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, settled)


def commit_units(conn: KeptConnection, binds: Any, batch: list[_Unit]
                 ) -> tuple[list[BaseException | None], int]:
    """Write `batch` in one transaction: each unit's outcome (None: committed) and how many
    transactions committed. Shared by the writer thread and the writer process
    (writer_process.py).

    A failure of the database (StorageFull, StoreUnavailable) is every unit's: retrying would
    only repeat it. Any other failure is some unit's data (a duplicate id, a value too long
    for its column...): the units are then written one transaction each, so only the culprit
    gets the error and its neighbours their commit."""
    try:
        with conn.transaction() as cur:
            write_messages(binds, cur, batch)
    except (StorageFull, StoreUnavailable) as exc:
        return [exc] * len(batch), 0
    except Exception as exc:
        if len(batch) == 1:
            return [exc], 0
        results: list[BaseException | None] = []
        for unit in batch:
            results += commit_units(conn, binds, [unit])[0]
        return results, results.count(None)
    return [None] * len(batch), 1


def give_up(future: asyncio.Future[Any], seconds: float, *, dropped: bool = False) -> None:
    """Fail a caller whose deadline passed, unless it was settled meanwhile (also the deadline
    of an ingress process waiting on the writer process, writer_link.py)."""
    if not future.done():
        future.set_exception(StoreUnavailable(late_reason(seconds, dropped)))


def late_reason(seconds: float, dropped: bool) -> str:
    then = "it was dropped" if dropped else "it may still complete"
    return f"the commit did not finish within {seconds:g} s ({then})"


def _own_copy(exc: BaseException) -> BaseException:
    """A separate exception object per caller, so tracebacks do not pile up on a shared one."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc
    copy.__cause__ = exc.__cause__ or exc
    return copy


def _settle_all(settled: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, exc in settled:
        if future.done():  # the caller was cancelled; the write stands
            continue
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)
