"""CPU per message of the store's hot write paths, in-process (no SMTP, no sockets).

Why: the group-commit writer thread is the ingest bottleneck, and what counts on a 2-core
machine shared with other work is its CPU per message, not wall time. This enqueues N 2 KB
one-recipient messages through `Store.enqueue` in rounds of B concurrent callers (so each
commit carries about B units), and reads the writer thread's CPU from /proc (schedstat).
Then it drains the queue the way delivery does, `claim_due` + `record_outcomes` in batches of
200, and reports the calling thread's CPU per recipient for each.

    .venv/bin/python bench/store_write.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/store_write.py --n 5000 --backends sqlite --batches 5
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/store_write.py   # another checkout's store
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from postroom.model import NewMessage, RecipientStatus, new_id
from postroom.store import Store
from postroom.store.outbound import Finish

PG_ADMIN = os.environ.get("POSTROOM_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
RAW = (b"From: a@acme.test\r\nTo: r@example.com\r\nSubject: bench\r\n\r\n"
       + b"x" * 76 + b"\r\n") * 26


def thread_cpu_ns(native_id: int) -> int:
    """CPU time of one thread of this process (ns), from the scheduler's own accounting."""
    with open(f"/proc/self/task/{native_id}/schedstat") as f:
        return int(f.read().split()[0])


def thread_ticks(native_id: int) -> tuple[int, int]:
    """(user, system) CPU ticks of one thread: how much of it is the kernel (fsync, wakeups)."""
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def message(account_id: str) -> NewMessage:
    return NewMessage(
        id=new_id(), account_id=account_id, mail_from="sender@acme.test",
        recipients=("rcpt@example.com",), raw=RAW, header_from="a@acme.test", subject="bench",
        message_id_header=f"<{uuid.uuid4().hex}@acme.test>", client_ip="192.0.2.1",
        options={"tags": ["bench"]},
    )


async def enqueue_rounds(store: Store, account_id: str, n: int, batch: int) -> None:
    for _ in range(n // batch):
        await asyncio.gather(*(store.enqueue(message(account_id)) for _ in range(batch)))


def run_enqueue(
    store: Store, account_id: str, n: int, batch: int
) -> tuple[float, float, float]:
    """(writer µs CPU per message, of which system, average units per commit)."""
    asyncio.run(store.enqueue(message(account_id)))  # start the writer thread
    thread = store.writer._thread
    assert thread is not None and thread.native_id is not None
    cpu0, commits0 = thread_cpu_ns(thread.native_id), store.writer.commits
    ticks0 = thread_ticks(thread.native_id)
    asyncio.run(enqueue_rounds(store, account_id, n, batch))
    cpu = thread_cpu_ns(thread.native_id) - cpu0
    user, system = (b - a for a, b in zip(ticks0, thread_ticks(thread.native_id), strict=True))
    commits = store.writer.commits - commits0
    us = cpu / 1000 / n
    return us, us * system / max(user + system, 1), n / max(commits, 1)


def run_delivery(store: Store) -> tuple[float, float, int]:
    """(claim µs CPU per recipient, record_outcomes µs per recipient, recipients)."""
    claim_ns = record_ns = 0
    total = 0
    while True:
        t0 = time.thread_time_ns()
        claims = store.claim_due("bench", now=datetime.now(UTC), limit=200, lease_seconds=300)
        t1 = time.thread_time_ns()
        if not claims:
            break
        items = [Finish(c.recipient_id, RecipientStatus.DELIVERED, "250 2.0.0 ok", 1,
                        remote_host="mx.example.com") for c in claims]
        t2 = time.thread_time_ns()
        recorded = store.record_outcomes("bench", items)
        t3 = time.thread_time_ns()
        assert len(recorded) == len(items)
        claim_ns += t1 - t0
        record_ns += t3 - t2
        total += len(claims)
    return claim_ns / 1000 / max(total, 1), record_ns / 1000 / max(total, 1), total


def pg_database() -> str:
    name = f"postroom_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def pg_drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one(backend: str, n: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pg_name = None
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            pg_name = pg_database()
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
        try:
            with Store.open(url) as store:
                account = store.create_account("acme", sender_domains=["acme.test"])
                writer_us, sys_us, per_commit = run_enqueue(store, account.id, n, batch)
                claim_us, record_us, total = run_delivery(store)
        finally:
            if pg_name:
                pg_drop(pg_name)
    print(f"{backend:10} batch {batch:3}: writer {writer_us:6.1f} µs/msg "
          f"(system {sys_us:5.1f}; {per_commit:4.1f} units/commit) | claim_due {claim_us:5.1f} µs/rcpt, "
          f"record_outcomes {record_us:5.1f} µs/rcpt ({total} rcpts)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import postroom.store
    print(f"store code: {Path(postroom.store.__file__).parent}")
    for _ in range(args.repeat):
        for backend in args.backends:
            for batch in args.batches:
                one(backend, args.n, batch)


if __name__ == "__main__":
    main()
