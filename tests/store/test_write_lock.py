"""The SQLite write lock: exclusive across processes and threads, re-entrant within a thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from postroom.store.engine import Database
from postroom.store.errors import StoreUnavailable
from postroom.store.write_lock import WriteLock
from support.write_lock import write_lock_held

_HOLD = """
import sys, time
from pathlib import Path
from postroom.store.write_lock import WriteLock
lock = WriteLock(Path(sys.argv[1]))
with lock.held():
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_another_process_waits_until_release(tmp_path: Path) -> None:
    path = tmp_path / "db-writer.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), "0.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with WriteLock(path).held():
            waited = time.monotonic() - started
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
    assert waited >= 0.3  # it could not enter while the other process held it


def test_a_thread_waits_at_most_the_timeout(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "db-writer.lock", timeout=0.3)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.held():
            held.set()
            release.wait(timeout=10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable), lock.held():
            pass
        assert 0.25 <= time.monotonic() - started < 3
    finally:
        release.set()
        t.join(timeout=10)
    with lock.held():  # free again once the holder is done
        pass
    lock.close()


def test_an_unusable_lock_file_turns_the_lock_off_not_the_writes(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "missing-dir" / "db-writer.lock")
    with lock.held(), lock.held():
        pass  # no file could be made: SQLite's own busy handler is all that is left
    lock.close()


def test_threads_exclude_each_other_and_nesting_does_not_deadlock(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "db-writer.lock")
    inside = 0
    most = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(50):
            with lock.held(), lock.held():  # nested on one thread: re-entrant
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most == 1
    lock.close()


def test_sqlite_database_writes_under_the_lock(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    try:
        assert db.write_lock is not None
        assert db.write_lock.path == Path(f"{(tmp_path / 'q.db').resolve()}-writer.lock")
        held_elsewhere = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with db.write_lock.held():  # type: ignore[union-attr]
                held_elsewhere.set()
                release.wait(timeout=10)

        t = threading.Thread(target=hold)
        t.start()
        assert held_elsewhere.wait(timeout=10)
        done = threading.Event()

        def write() -> None:
            with db.write() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            done.set()

        w = threading.Thread(target=write)
        w.start()
        assert not done.wait(timeout=0.3)  # queued behind the holder, not writing
        release.set()
        assert done.wait(timeout=10)
        t.join(timeout=10)
        w.join(timeout=10)
    finally:
        db.dispose()


@pytest.mark.parametrize("url", ["postgresql://127.0.0.1:5432/test"])
def test_postgresql_has_no_lock(url: str) -> None:
    pytest.importorskip("psycopg")
    db = Database(url)
    try:
        assert db.write_lock is None
    finally:
        db.dispose()


def test_a_request_path_gives_up_on_another_process_hold(tmp_path: Path) -> None:
    """Writes that clients wait on (HTTP requests, CLI commands) poll for the lock for at most
    the timeout and then fail with StoreUnavailable; the hot paths' blocking wait has no
    deadline and simply goes on once the holder lets go."""
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    assert db.write_lock is not None
    db.write_lock.timeout = 0.3
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with write_lock_held(tmp_path / "q.db"):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="another process holds it"), \
                    db.write() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            assert 0.25 <= time.monotonic() - started < 3.0
            blocked = threading.Thread(target=_insert_blocking, args=(db,))
            blocked.start()
            blocked.join(1.5)
            assert blocked.is_alive()  # still waiting, well past the timeout
        blocked.join(10)
        assert not blocked.is_alive()
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").fetchall() == [(2,)]
    finally:
        db.dispose()


def _insert_blocking(db: Database) -> None:
    with db.write(blocking=True) as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")


def test_a_poller_leaves_the_process_mutex_free_between_tries(tmp_path: Path) -> None:
    """While one thread polls for a lock another process holds, the others of its process (the
    group-commit writer) can still take their turn at the mutex instead of queueing behind it."""
    lock = WriteLock(tmp_path / "db-writer.lock", timeout=3.0)
    outcome: list[BaseException | None] = []

    def poll() -> None:
        try:
            with lock.held():
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with write_lock_held(tmp_path / "db"):  # holds tmp_path/"db-writer.lock"
        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.1)
        free = 0
        for _ in range(50):
            if lock._mutex.acquire(timeout=0.01):
                lock._mutex.release()
                free += 1
        assert poller.is_alive() and free > 0
    poller.join(5)
    assert outcome == [None]  # and it got the lock once the other process let go
