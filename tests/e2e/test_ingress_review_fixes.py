"""Ingress review fixes against a real `postroom serve`: trusted networks across STARTTLS, the
header From check, a client that half-closes, RCPT and SMTPUTF8, and a graceful shutdown."""

from __future__ import annotations

import signal
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.server import RunningServer, make_server, tls_ctx

pytestmark = pytest.mark.slow

TRUSTED_IP = "127.0.0.2"  # the "legacy" account's trusted network
LEGACY_MSG = b"From: app@legacy.example\r\nSubject: review\r\n\r\nhello\r\n"


def _accounts(srv: RunningServer) -> None:
    srv.create_account("shop", "--sender-domain", "shop.example")
    srv.create_account("legacy", "--sender-domain", "legacy.example",
                       "--trusted-network", f"{TRUSTED_IP}/32")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("review"))
    _accounts(srv)
    srv.start()
    yield srv
    srv.stop()


def queued_id(text: bytes) -> str:
    assert text.startswith(b"2.6.0 Message queued as <"), text
    return text.decode().split("<", 1)[1].rstrip(">")


def raw_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(TRUSTED_IP, 0))
    assert s.recv(1024).startswith(b"220 ")
    return s


def read_to_eof(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def read_until(s: socket.socket, marker: bytes) -> bytes:
    out = b""
    while marker not in out:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


# --- 1. a trusted network keeps its account after STARTTLS ----------------------------------
@pytest.mark.parametrize("listener", ["plain", "starttls"])
def test_trusted_network_keeps_its_account_after_starttls(server: RunningServer,
                                                          listener: str) -> None:
    port = server.plain if listener == "plain" else server.starttls
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(TRUSTED_IP, 0)) as c:
        c.ehlo("legacy.client")
        c.starttls(context=tls_ctx())
        # RFC 3207: the HELO is forgotten with everything else the client said
        assert c.docmd("MAIL", "FROM:<app@legacy.example>") == (
            503, b"5.5.1 Send EHLO/HELO first")
        c.ehlo("legacy.client")
        assert c.mail("app@legacy.example") == (250, b"2.1.0 Sender <app@legacy.example> OK")
        c.rcpt("someone@example.org")
        code, text = c.data(LEGACY_MSG)
    assert code == 250
    assert server.message(queued_id(text))["header_from"] == "app@legacy.example"


def test_untrusted_client_still_needs_auth_after_starttls(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.starttls, timeout=10) as c:
        c.ehlo("x")
        c.starttls(context=tls_ctx())
        c.ehlo("x")
        assert c.mail("news@shop.example") == (530, b"5.7.0 Authentication required")


# --- 2. the header From check cannot be bypassed --------------------------------------------
ONE_FROM = b"5.7.1 Message must have exactly one From header address"
BAD_FROM = b"5.7.1 Header From must be a single valid mailbox"


@pytest.mark.parametrize(("header", "answer"), [
    (b"From: evil@bad.com@shop.example\r\n", BAD_FROM),
    (b"From: Evil <evil@bad.com@shop.example>\r\n", BAD_FROM),
    (b"From: <ceo@bad.com\t@shop.example>\r\n", BAD_FROM),
    (b"From: evil@bad.com\x00a@shop.example\r\n", BAD_FROM),
    (b"From: news@shop.example\x00\r\n", BAD_FROM),
    (b"From : evil@bad.com\r\nFrom: news@shop.example\r\n", ONE_FROM),
    (b"From: news@shop.example\r\nfrom\t: evil@bad.com\r\n", ONE_FROM),
    (b"From:\r\nFrom: news@shop.example\r\n", ONE_FROM),
])
def test_header_from_must_be_one_valid_mailbox(server: RunningServer, header: bytes,
                                               answer: bytes) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.implicit_tls, context=tls_ctx(), timeout=10) as c:
        c.login("apikey", server.keys["shop"])
        c.mail("news@shop.example")
        c.rcpt("someone@example.org")
        assert c.data(header + b"Subject: t\r\n\r\nhello\r\n") == (550, answer)
        # the honest message on the same connection still goes
        c.mail("news@shop.example")
        c.rcpt("someone@example.org")
        assert c.data(b"From: News <news@shop.example>\r\nSubject: t\r\n\r\nhi\r\n")[0] == 250


# --- 3. a half-closing client still gets its replies ----------------------------------------
def test_half_closed_client_gets_the_reply_for_its_committed_message(
        server: RunningServer) -> None:
    s = raw_connect(server.plain)
    s.sendall(b"EHLO x\r\nMAIL FROM:<app@legacy.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert b"354 " in read_until(s, b"354 ")
    s.sendall(LEGACY_MSG + b".\r\nNOOP\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    lines = read_to_eof(s).split(b"\r\n")
    s.close()
    assert lines[0].startswith(b"250 2.6.0 Message queued as <"), lines
    assert lines[1:] == [b"250 2.0.0 OK", b"221 2.0.0 Bye", b""]
    assert server.message(queued_id(lines[0][4:]))["subject"] == "review"


def test_half_close_without_quit_ends_the_session(server: RunningServer) -> None:
    s = raw_connect(server.plain)
    s.sendall(b"EHLO x\r\nNOOP\r\n")
    s.shutdown(socket.SHUT_WR)
    out = read_to_eof(s)  # returns: the server closed its side too
    s.close()
    assert out.endswith(b"250 2.0.0 OK\r\n")


# --- 6. RCPT, like MAIL, needs SMTPUTF8 for a non-ASCII address -----------------------------
def test_non_ascii_recipient_needs_smtputf8(server: RunningServer) -> None:
    s = raw_connect(server.plain)
    s.sendall("EHLO x\r\nMAIL FROM:<app@legacy.example>\r\nRCPT TO:<ü@exämple.org>\r\n"
              "RSET\r\nMAIL FROM:<app@legacy.example> SMTPUTF8\r\nRCPT TO:<ü@exämple.org>\r\n"
              "QUIT\r\n".encode())
    lines = read_to_eof(s).decode().split("\r\n")
    s.close()
    assert "553 5.6.7 Non-ASCII address requires SMTPUTF8" in lines
    assert "250 2.1.5 Recipient <ü@exämple.org> OK" in lines


# --- 7. shutdown: 421 for the idle, the grace for a transaction -----------------------------
def test_shutdown_answers_idle_sessions_and_lets_a_message_finish(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    _accounts(srv)
    srv.start()
    try:
        assert srv.proc is not None
        idle = raw_connect(srv.plain)
        idle.sendall(b"EHLO x\r\n")
        read_until(idle, b"250 HELP")
        busy = raw_connect(srv.plain)
        busy.sendall(b"EHLO x\r\nMAIL FROM:<app@legacy.example>\r\nRCPT TO:<b@example.org>\r\n"
                     b"DATA\r\n")
        read_until(busy, b"354 ")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the shutdown has begun: the final dot comes after it
        busy.sendall(LEGACY_MSG + b".\r\n")
        busy_lines = read_to_eof(busy).split(b"\r\n")
        idle_out = read_to_eof(idle)
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
    assert idle_out == b"421 4.3.2 Service shutting down, closing connection\r\n"
    assert busy_lines[0].startswith(b"250 2.6.0 Message queued as <"), busy_lines
    assert busy_lines[1:] == [b"421 4.3.2 Service shutting down, closing connection", b""]
    assert srv.message(queued_id(busy_lines[0][4:]))["subject"] == "review"
    assert "Traceback" not in srv.log()
