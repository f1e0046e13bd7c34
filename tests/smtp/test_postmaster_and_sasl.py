"""The engine's answers where RFCs name them: `RCPT TO:<Postmaster>` without a domain
(RFC 5321 §4.1.1.3, §4.5.1) and an over-long SASL response (RFC 4954 §4, 500 5.5.6)."""

from __future__ import annotations

import base64

import pytest

from postroom.smtp import replies as R
from postroom.smtp.commands import Path, PathError, parse_path
from postroom.smtp.server_protocol import (
    MAX_AUTH_LINE,
    NEED_DATA,
    Auth,
    Hello,
    Mail,
    Phase,
    Rcpt,
    Respond,
    ServerConnection,
)


# --- RCPT TO:<Postmaster> -------------------------------------------------------------------
@pytest.mark.parametrize("arg", ["TO:<Postmaster>", "TO:<postmaster>", "TO:<POSTMASTER>",
                                 "to: <PostMaster>"])
def test_postmaster_without_domain_is_a_recipient(arg: str) -> None:
    path = parse_path(arg, "TO", allow_null=False)
    assert path.address.lower() == "postmaster" and path.params == {}


@pytest.mark.parametrize("arg", ["TO:<pepe>", "TO:<postmaster2>", "TO:<abuse>", "TO:<postmaster@>",
                                 "TO:<@relay.example:Postmaster>", 'TO:<"Postmaster">'])
def test_other_paths_without_domain_stay_malformed(arg: str) -> None:
    with pytest.raises(PathError) as caught:
        parse_path(arg, "TO", allow_null=False)
    assert caught.value.kind == "address"


def test_postmaster_is_no_sender() -> None:
    with pytest.raises(PathError):
        parse_path("FROM:<Postmaster>", "FROM", allow_null=True)


def _rcpt(line: bytes) -> object:
    conn = ServerConnection(max_message_size=1000, max_recipients=5)
    conn.receive_data(b"EHLO x\r\nMAIL FROM:<a@shop.example>\r\n" + line + b"\r\n")
    assert isinstance(conn.next_event(), Hello)
    conn.send(R.R250_OK)
    assert isinstance(conn.next_event(), Mail)
    conn.send(R.R250_OK)
    return conn.next_event()


def test_engine_hands_postmaster_to_the_policy() -> None:
    event = _rcpt(b"RCPT TO:<Postmaster>")
    assert isinstance(event, Rcpt) and event.path == Path("Postmaster")


def test_engine_still_refuses_other_local_parts() -> None:
    event = _rcpt(b"RCPT TO:<pepe>")
    assert isinstance(event, Respond)
    assert event.reply.to_bytes() == b"501 5.1.7 Bad recipient address <pepe>\r\n"


# --- an over-long SASL response -------------------------------------------------------------
def _feed(conn: ServerConnection, data: bytes) -> bytes:
    """Answer every event as a permissive policy would; return the output."""
    conn.receive_data(data)
    out = b""
    while (event := conn.next_event()) is not NEED_DATA:
        if isinstance(event, Respond):
            out += conn.send(event.reply)
        elif isinstance(event, Auth):
            out += conn.send(R.R235_AUTH_OK)
        else:
            out += conn.send(R.R250_OK)
    return out


TOO_LONG = b"500 5.5.6 Authentication Exchange line is too long\r\n"


@pytest.mark.parametrize("start", [b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n",
                                   b"AUTH LOGIN\r\n" + base64.b64encode(b"apikey") + b"\r\n"])
def test_over_long_sasl_response_is_5_5_6_and_ends_the_exchange(start: bytes) -> None:
    conn = ServerConnection(max_message_size=1000, max_recipients=5, allow_plaintext_auth=True)
    out = _feed(conn, b"EHLO x\r\n" + start + b"A" * (MAX_AUTH_LINE + 10) + b"\r\nNOOP\r\n")
    assert out.endswith(TOO_LONG + b"250 2.0.0 OK\r\n"), out  # NOOP is a command again
    assert conn.phase is Phase.COMMAND and not conn.authenticated


def test_over_long_sasl_response_in_pieces() -> None:
    """The line is discarded as it arrives (never buffered whole); the answer is the same."""
    conn = ServerConnection(max_message_size=1000, max_recipients=5, allow_plaintext_auth=True)
    out = _feed(conn, b"EHLO x\r\nAUTH PLAIN\r\n")
    for _ in range(5):
        conn.receive_data(b"A" * 8000)
        assert conn.next_event() is NEED_DATA
    assert conn.buffered <= MAX_AUTH_LINE
    out += _feed(conn, b"A\r\nNOOP\r\n")
    assert out.endswith(TOO_LONG + b"250 2.0.0 OK\r\n"), out


def test_over_long_command_line_is_still_5_5_2() -> None:
    conn = ServerConnection(max_message_size=1000, max_recipients=5, allow_plaintext_auth=True)
    out = _feed(conn, b"EHLO x\r\nAUTH PLAIN " + b"A" * 5000 + b"\r\n")
    assert out.endswith(b"500 5.5.2 Line too long\r\n"), out
