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
would not exclude each other): they queue on a re-entrant mutex first, so a write transaction
nested in another on the same thread does not deadlock. PostgreSQL needs none of this.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteLock:
    """Exclusive, re-entrant per thread, across processes: `with lock.held(): ...`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._depth = 0  # only read or changed by the thread holding `_mutex`
        self._fd = -1
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:  # blocks without the interpreter lock
            outermost = self._depth == 0
            if outermost:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)  # likewise
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = -1

    def _descriptor(self) -> int:
        """This process's descriptor; a forked child opens its own (an inherited one would
        share the parent's lock)."""
        pid = os.getpid()
        if self._fd < 0 or self._pid != pid:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = pid
        return self._fd
