"""The writer process: every SMTP ingress process's accepted messages, committed by one process.

Why (see writer_link.py for the ingress side): the group commit needs a thread that is not the
event loop, and in the loop's process that thread fights the loop for the interpreter lock.
Here it has an interpreter to itself: a single-threaded loop over a Unix socket reads every
complete request the ingress processes have sent, writes them in one transaction
(`commit.commit_units`, the thread writer's own code: batches grow under load by themselves,
a data error is retried unit by unit), fsyncs, and sends each connection its replies. While a
transaction runs, new requests wait in the socket buffers; they are the next batch.

Lifecycle: `postroom serve` runs it as a supervised child (restarted a second after it dies;
its clients answer 451 meanwhile). On SIGTERM it stops accepting connections and ends once
every client has closed its own (the ingress processes close theirs after their last session)
or after `grace` seconds; whatever it has received by then is committed and answered first.
It also ends when its parent is gone.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import selectors
import signal
import socket
import time
from pathlib import Path

from postroom.config.heap import settle_heap
from postroom.config.logs import configure_logging
from postroom.store import rows
from postroom.store.commit import commit_units
from postroom.store.engine import Database, KeptConnection
from postroom.store.errors import StorageFull, StoreUnavailable
from postroom.store.fastsql import for_dialect
from postroom.store.queue_rows import Unit
from postroom.store.writer_link import (
    DROPPED,
    FULL,
    INVALID,
    LEN,
    MAX_FRAME,
    OK,
    UNAVAILABLE,
    address,
    decode,
    frames,
)

log = logging.getLogger("postroom.store.writer")

#: One transaction holds at most this many messages / raw bytes (as the thread writer's).
MAX_MESSAGES = 1000
MAX_BYTES = 64 << 20
READ_CHUNK = 1 << 20


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.eof = False


class Writer:
    """The loop; `run()` returns when stopped (`stop()`, SIGTERM) and every client is gone."""

    def __init__(self, url: str, path: Path, *, grace: float = 10.0,
                 parent: int | None = None) -> None:
        self.db = Database(url)
        self.conn = KeptConnection(self.db)
        self.binds = for_dialect(self.db.engine.dialect)
        self.path, self.grace, self.parent = path, grace, parent
        self.sel = selectors.DefaultSelector()
        self.clients: dict[socket.socket, _Client] = {}
        self.listener: socket.socket | None = self._listen(path)
        self._inode = os.stat(address(path)).st_ino
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self._stop_at: float | None = None
        #: transactions committed (a test reads it: batching really happens)
        self.commits = 0

    @staticmethod
    def _listen(path: Path) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            sock.bind(address(path))
        finally:
            os.umask(old)
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def _unlisten(self) -> None:
        """Close the listener and remove its socket file, unless the file is already another
        writer's: a server started again after a crash binds anew while this one, orphaned,
        is still finishing."""
        assert self.listener is not None
        self.listener.close()
        self.listener = None
        with contextlib.suppress(OSError):
            if os.stat(address(self.path)).st_ino == self._inode:
                os.unlink(address(self.path))

    def stop(self) -> None:
        """Accept no one new; end when the clients are gone or `grace` has passed."""
        if self._stop_at is None:
            self._stop_at = time.monotonic() + self.grace

    def run(self) -> None:
        next_look = 0.0  # when to look again whether the parent is still there
        try:
            while not self._finished():
                timeout = 0.5 if self._stop_at is None else 0.05
                for key, mask in self.sel.select(timeout):
                    if key.data is None:
                        self._accept()
                        continue
                    client: _Client = key.data
                    if mask & selectors.EVENT_READ:
                        self._read(client)
                    if mask & selectors.EVENT_WRITE:
                        self._flush(client)
                while self._commit_some():
                    pass
                if self.parent is not None and time.monotonic() >= next_look:
                    next_look = time.monotonic() + 0.5
                    if os.getppid() != self.parent:
                        self.stop()
        finally:
            self._close()

    def _finished(self) -> bool:
        if self._stop_at is None:
            return False
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self._unlisten()
        return not self.clients or time.monotonic() >= self._stop_at

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, an aborted connection...
                log.error("writer: accept failed: %s", exc)
                return
            sock.setblocking(False)
            client = _Client(sock)
            self.clients[sock] = client
            self.sel.register(sock, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        """Everything the client has sent so far (several recvs: requests keep arriving)."""
        while len(client.inbuf) < MAX_FRAME + LEN.size:  # a whole frame fits, then it waits
            try:
                data = client.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                client.eof = True
                if not client.outbuf:
                    self._drop(client)
                else:
                    self.sel.modify(client.sock, selectors.EVENT_WRITE, client)
                return
            client.inbuf += data

    def _commit_some(self) -> bool:
        """Commit one batch of complete requests, answer them; False when there were none."""
        batch: list[Unit] = []
        owners: list[tuple[_Client, int]] = []
        dropped: list[tuple[_Client, int]] = []
        count = size = 0
        now = time.monotonic()
        accepted_at = rows.utc_now()
        for client in list(self.clients.values()):
            try:
                payloads, used = frames(client.inbuf)
            except ValueError as exc:
                log.error("writer: dropping a client that sent a bad frame: %s", exc)
                self._drop(client)
                continue
            taken = 0
            for payload in payloads:
                if batch and (count >= MAX_MESSAGES or size >= MAX_BYTES):
                    break
                taken += LEN.size + len(payload)
                try:
                    seq, deadline, messages = decode(payload)
                except Exception as exc:  # not our own client's frame: end that connection
                    log.error("writer: dropping a client that sent an unreadable request: %r",
                              exc)
                    self._drop(client)
                    break
                if deadline < now:
                    dropped.append((client, seq))
                    continue
                count += len(messages)
                size += sum(len(m.raw) for m in messages)
                batch.append(Unit(messages=messages, accepted_at=accepted_at))
                owners.append((client, seq))
            del client.inbuf[:taken]
            if taken < used:
                break  # the caps: the rest of this client's requests make the next batch
        if not batch and not dropped:
            return False
        replies: dict[_Client, tuple[list[int], bytearray]] = {}
        for client, seq in dropped:
            _add(replies, client, seq, DROPPED)
        if batch:
            results, transactions = commit_units(self.conn, self.binds, batch)
            self.commits += transactions
            for (client, seq), exc, unit in zip(owners, results, batch, strict=True):
                code = _code(exc)
                if code != OK:
                    log.error("writer: message %s not committed: %s",
                              ", ".join(m.id for m in unit.messages), exc)
                _add(replies, client, seq, code)
        for client, (seqs, codes) in replies.items():
            payload = marshal.dumps((seqs, bytes(codes)))
            client.outbuf += LEN.pack(len(payload)) + payload
            self._flush(client)
        return True

    def _flush(self, client: _Client) -> None:
        if client.sock not in self.clients:
            return
        while client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:sent]
        if client.eof and not client.outbuf:
            self._drop(client)
            return
        events = selectors.EVENT_WRITE if client.outbuf else selectors.EVENT_READ
        if client.eof:
            events = selectors.EVENT_WRITE
        self.sel.modify(client.sock, events, client)

    def _drop(self, client: _Client) -> None:
        if self.clients.pop(client.sock, None) is not None:
            self.sel.unregister(client.sock)
            client.sock.close()

    def _close(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        if self.listener is not None:
            self._unlisten()
        self.sel.close()
        self.conn.close()
        self.db.engine.dispose()


def _add(replies: dict[_Client, tuple[list[int], bytearray]], client: _Client, seq: int,
         code: int) -> None:
    seqs, codes = replies.setdefault(client, ([], bytearray()))
    seqs.append(seq)
    codes.append(code)


def _code(exc: BaseException | None) -> int:
    """A unit's outcome on the wire: anything but the database's own trouble is its data's."""
    if exc is None:
        return OK
    if isinstance(exc, StorageFull):
        return FULL
    if isinstance(exc, StoreUnavailable | OSError):
        return UNAVAILABLE
    return INVALID


def child_main(url: str, path: str, parent: int) -> None:
    """The spawned process (`child_process.supervise` target). It takes the store URL and the
    socket path rather than the settings, so that it loads neither pydantic nor the rest of
    the store (20 MB less: `bench/memory.py` sums every process)."""
    configure_logging()
    writer = Writer(url, Path(path), parent=parent)
    signal.signal(signal.SIGTERM, lambda *_: writer.stop())  # stop() is idempotent
    # Ctrl-C reaches the whole process group: the parent stops the ingress, then this, in order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # blocked since the spawn (child_process.held_signals: a SIGTERM that came meanwhile is
    # taken now, as a graceful stop); not imported from there, which would load pydantic
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    settle_heap()  # per request a few objects live until the commit: few young collections
    log.info("writer process ready on %s", writer.path)
    writer.run()
