"""One queue for SQLite's write lock, shared by every thread and process using the same file.

Why: SQLite lets one writer in at a time, and a writer that finds the lock taken waits in its
busy handler, which *sleeps* (1, 2, 5, 10, 15, 20, 25 … 100 ms) and polls again. With the
ingress's group-commit writer, the delivery process's claims and outcomes and the webhook
process all writing to one file, those sleeps left the ingress writer idle while the lock was
long free: under end-to-end load the processes slept 2 s per 10 s between them, and the
machine sat 19 % idle although every stage had work. Taking an exclusive `flock` on a lock file
beside the database before `BEGIN IMMEDIATE` turns that into a kernel wait queue: a waiter
wakes the moment the holder releases, and SQLite's busy handler is left for writers outside
Postroom (the `sqlite3` shell, say), which are still safe, only slower.

Threads of one process share one descriptor (a `flock` belongs to the open file, so threads
would not exclude each other): they queue on a re-entrant mutex first. PostgreSQL needs none
of this.

The lock only makes waiting cheaper; SQLite still guards the data. So it never makes a write
fail that would have worked: a lock file that cannot be opened (another user made it, a
read-only directory) turns the lock off for this process, with one warning. Threads of one
process wait at most `timeout` (SQLite's busy timeout), then fail with `StoreUnavailable` (the
ingress answers 451). Across processes, the hot and background paths (the group-commit writer,
delivery's claims and outcomes, the webhook queue and purge) wait with a blocking `flock`, which cannot be given a deadline: a holder
that hangs inside its transaction (a stuck disk) makes them wait with it. Polling with
non-blocking tries would bound that, but cost 12 % of end-to-end throughput in paired runs; the
writer's callers are bounded instead (each enqueue gives up after `[storage] commit_timeout`,
commit.py). Every other writer (HTTP requests, CLI commands, inbound bounces) polls with
non-blocking tries 50 µs to 2 ms apart for at most `timeout`, then fails with StoreUnavailable
(HTTP 503) rather than hang (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from postroom.store.errors import StoreUnavailable

log = logging.getLogger("postroom.store")

#: Bounded waits poll for the file lock this often: from 50 µs, doubling, up to 2 ms.
POLL_FIRST_S = 0.00005
POLL_MAX_S = 0.002


class WriteLock:
    """Exclusive, re-entrant per thread, across processes: `with lock.held(): ...`."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._mutex = threading.RLock()
        self._depth = 0  # only read or changed by the thread holding `_mutex`
        self._fd = -1
        self._pid = 0
        self._off = False  # the lock file could not be opened: SQLite's busy handler only

    @contextmanager
    def held(self, *, blocking: bool = False) -> Iterator[None]:
        """`blocking`: wait for another process's hold without a deadline, woken the moment
        it ends (the hot and background paths, which no client waits on directly). Otherwise
        poll for at most `timeout` seconds in all, then raise StoreUnavailable: a request or a
        command must not hang behind a stuck writer. A poller lets go of this process's mutex
        between its tries, so the group-commit writer in the same process is not held up."""
        deadline = time.monotonic() + self.timeout
        pause = POLL_FIRST_S
        while True:
            if not self._mutex.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StoreUnavailable("timed out waiting for the store's write lock")
            if self._depth:  # re-entered: the outermost hold has the file
                locked = False
                break
            got = self._lock_file(blocking)
            if got is not None:
                locked = got
                break
            self._mutex.release()
            if time.monotonic() >= deadline:
                raise StoreUnavailable("timed out waiting for the store's write lock (another"
                                       " process holds it)")
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX_S)
        try:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if locked:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _lock_file(self, blocking: bool) -> bool | None:
        """Take the file lock (True), go on without it (False) when it cannot be had, or
        None: another process holds it (only when not `blocking`)."""
        fd = self._descriptor()
        if fd < 0:
            return False
        if blocking:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits without the interpreter lock
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return True

    def close(self) -> None:
        if not self._mutex.acquire(timeout=self.timeout):
            return
        try:
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd, self._off = -1, False
        finally:
            self._mutex.release()

    def _descriptor(self) -> int:
        """This process's descriptor; a forked child opens its own (an inherited one would
        share the parent's lock)."""
        pid = os.getpid()
        if (self._fd < 0 and not self._off) or self._pid != pid:
            self._pid, self._off = pid, False
            try:  # read-only is enough for flock, so a file another user made still works
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self._fd, self._off = -1, True
                log.warning("store write lock %s unusable (%s): writers fall back to SQLite's"
                            " busy handler", self.path, exc)
        return self._fd
