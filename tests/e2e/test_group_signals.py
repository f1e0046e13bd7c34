"""Shutdown by a signal to the whole process group (Ctrl-C, `kill -- -PGID`, systemd's
KillMode=control-group): every child gets the signal itself, then its parent's SIGTERM too. The
second signal must not cut the first one's graceful stop short (delivery released no leases, so
its recipients waited `lease_seconds` after a restart), and a child still starting up when the
signal comes must end quietly (no KeyboardInterrupt traceback)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.delivery.harness import message_bytes, submit, wait_until

from support.server import POSTROOM, RunningServer, make_server, wait_port

pytestmark = pytest.mark.slow


class StallingReceiver:
    """An SMTP receiver that takes MAIL, RCPT and DATA, then never answers the final dot."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.in_data = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 stall.test ESMTP\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-stall.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                elif line.rstrip(b"\r\n") == b".":
                    self.in_data.set()  # and no reply, ever
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


def start_in_own_group(server: RunningServer) -> subprocess.Popen[bytes]:
    """`postroom serve` as the leader of a process group of its own, as a terminal runs it."""
    server.log_path = server.root / "serve.log"
    log = open(server.log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([*POSTROOM, "serve", "--config", str(server.config)],
                            env=server.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return proc


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def lease_owners(server: RunningServer) -> list[tuple[str, str | None]]:
    path = server.storage_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return db.execute("SELECT address, lease_owner FROM recipients").fetchall()


@pytest.mark.parametrize("signals", [
    (signal.SIGINT,), (signal.SIGTERM,),
    (signal.SIGINT, signal.SIGINT),  # Ctrl-C pressed twice
], ids=["ctrl-c", "sigterm", "ctrl-c-twice"])
def test_group_signal_releases_the_leases_in_flight(tmp_path: Path,
                                                    signals: tuple[signal.Signals, ...]) -> None:
    receiver = StallingReceiver()
    server = make_server(tmp_path, delivery=(
        f'enabled = true\nroutes = {{"*" = "127.0.0.1:{receiver.port}"}}\ntls = "off"\n'
        "poll_seconds = 0.1\nshutdown_grace_seconds = 1\n"))
    server.cli("accounts", "create", "sender", "--sender-domain", "sender.test",
               "--trusted-network", "127.0.0.0/8")
    proc = start_in_own_group(server)
    try:
        wait_port(server.plain)
        wait_until(lambda: "delivery: " in server.log(), 20, "the delivery process")
        submit(server, ["s1@slow.example"], message_bytes("stalled"))
        assert receiver.in_data.wait(20), server.log()
        for sig in signals:  # what Ctrl-C does: the whole foreground process group
            os.killpg(proc.pid, sig)
            time.sleep(0.3)
        assert proc.wait(30) == 0, server.log()
    finally:
        stop_group(proc)
        receiver.close()
    log = server.log()
    assert "delivery stopped (1 leases released)" in log, log
    assert "Traceback" not in log, log
    assert lease_owners(server) == [("s1@slow.example", None)]


def test_ctrl_c_while_the_children_start_is_quiet(tmp_path: Path) -> None:
    server = make_server(tmp_path, delivery="enabled = true\n")
    server.cli("accounts", "create", "sender", "--sender-domain", "sender.test")
    proc = start_in_own_group(server)
    try:
        wait_until(lambda: "postroom ready" in server.log(), 20, "the server")
        time.sleep(0.3)  # the delivery and webhook children are being spawned now
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0, server.log()
    finally:
        stop_group(proc)
    log = server.log()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
