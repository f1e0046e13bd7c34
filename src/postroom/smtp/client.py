"""Postroom's outbound SMTP client: connect, EHLO, STARTTLS, AUTH, then pipelined transactions.

    async with await open_session(host, 25, helo_name="mx.example.net") as session:
        result = await session.send("bounce@example.net", ["a@example.org"], message_bytes)
        result.outcomes  # {"a@example.org": Reply(250, "2.0.0", ...)}

Protocol decisions live in the sans-IO modules (`client_protocol`, `client_transaction`,
`client_message`); this module adds the connection phase. TLS policy follows the route's
`TlsMode`: "off" never tries STARTTLS; "opportunistic" uses it when offered and, if the
handshake fails, reconnects and carries on in plaintext (it never continues on the connection
whose handshake failed); "required" fails with `TlsError` unless TLS is established.
Credentials are only ever sent over TLS, unless the policy is explicitly "off".
"""

from __future__ import annotations

import asyncio
import functools
import ssl

from postroom.smtp.client_connection import Connection
from postroom.smtp.client_errors import (
    AuthenticationFailed,
    ClientTimeouts,
    ConnectError,
    ConnectionLost,
    DeliveryError,
    ProtocolFailure,
    SessionRefused,
    SmtpTimeout,
    TlsError,
    TlsPolicy,
    io_step,
)
from postroom.smtp.client_protocol import (
    AUTH_CANCEL,
    STARTTLS,
    Capabilities,
    auth_login_command,
    auth_plain_command,
    auth_response,
    ehlo_command,
    helo_command,
    parse_ehlo,
)
from postroom.smtp.client_session import ClientSession
from postroom.smtp.client_transaction import TransactionResult
from postroom.smtp.replies import Reply
from postroom.smtp.tls import client_context

__all__ = [
    "AuthenticationFailed",
    "ClientSession",
    "ClientTimeouts",
    "ConnectError",
    "ConnectionLost",
    "DeliveryError",
    "ProtocolFailure",
    "SessionRefused",
    "SmtpTimeout",
    "TlsError",
    "TlsPolicy",
    "TransactionResult",
    "open_session",
]


class _HandshakeFailed(Exception):
    """Internal: the TLS handshake after `220` failed (opportunistic mode may reconnect)."""

    def __init__(self, error: TlsError) -> None:
        super().__init__(error.text)
        self.error = error


@functools.lru_cache(maxsize=2)
def _shared_context(verify: bool) -> ssl.SSLContext:
    return client_context(verify)  # loading the system CA store is slow; build it once


async def open_session(
    host: str,
    port: int = 25,
    *,
    helo_name: str,
    tls: TlsPolicy = "opportunistic",
    verify: bool = False,
    server_hostname: str | None = None,
    username: str | None = None,
    password: str | None = None,
    timeouts: ClientTimeouts = ClientTimeouts(),
    tls_context: ssl.SSLContext | None = None,
) -> ClientSession:
    """Connect and get a session ready for `send()`; raises only `DeliveryError` subclasses.

    `server_hostname` is the name used for SNI and certificate checks (default: `host`);
    `tls_context` replaces the default client context (e.g. one trusting a private CA).
    """
    if tls not in ("off", "opportunistic", "required"):
        raise ValueError(f"unknown TLS policy {tls!r}")
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    context = tls_context or _shared_context(verify)
    args = (host, port, helo_name, context, server_hostname or host, username, password, timeouts)
    try:
        return await _establish(*args, tls=tls)
    except _HandshakeFailed as failed:
        if tls != "opportunistic":
            raise failed.error from None
        session = await _establish(*args, tls="off", fallback=True)
        session.tls_fallback_reason = failed.error.text
        return session


async def _connect(host: str, port: int, timeout: float) -> Connection:
    try:
        async with asyncio.timeout(timeout):
            return await Connection.open(host, port)
    except TimeoutError:
        raise ConnectError(f"connection to {host}:{port} timed out") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConnectError(f"cannot connect to {host}:{port}: {reason}") from None


async def _establish(
    host: str,
    port: int,
    helo_name: str,
    context: ssl.SSLContext,
    sni: str,
    username: str | None,
    password: str | None,
    timeouts: ClientTimeouts,
    *,
    tls: TlsPolicy,
    fallback: bool = False,
) -> ClientSession:
    conn = await _connect(host, port, timeouts.connect)
    session = ClientSession(conn, host, timeouts)
    try:
        banner = await session.read(timeouts.greeting, "greeting")
        session.banner = banner
        if banner.code != 220:
            _unexpected(banner, "greeting")
            raise SessionRefused(f"server refused the session: {banner}", banner)
        await _ehlo(session, helo_name)
        if tls != "off":
            await _starttls(session, conn, helo_name, context, sni, required=tls == "required")
        if username is not None and password is not None:
            if not session.tls_active and (tls != "off" or fallback):
                raise TlsError("TLS is not available; credentials are only sent over TLS")
            await _authenticate(session, username, password)
        return session
    except (SessionRefused, TlsError):
        await session.close()  # polite QUIT: the conversation itself is still in order
        raise
    except BaseException:
        conn.abort()
        raise


async def _ehlo(session: ClientSession, name: str) -> None:
    """EHLO, falling back to HELO when the server rejects EHLO with a 5xx (RFC 5321 §3.2)."""
    t = session.timeouts.ehlo
    rep = await session.command(ehlo_command(name), t, "EHLO")
    if rep.code == 250:
        session.capabilities = parse_ehlo(rep)
        return
    if 500 <= rep.code < 600:
        rep = await session.command(helo_command(name), t, "HELO")
        if rep.code == 250:
            session.capabilities = Capabilities()
            return
    _unexpected(rep, "EHLO/HELO")
    raise SessionRefused(f"server refused EHLO/HELO: {rep}", rep)


def _unexpected(rep: Reply, step: str) -> None:
    """A reply that is neither the one expected nor a refusal (a second 220 greeting read as
    the EHLO reply) means the dialogue is out of step: a protocol failure, retried later."""
    if rep.code < 400:
        raise ProtocolFailure(f"unexpected reply to {step}: {rep}")


async def _starttls(
    session: ClientSession,
    conn: Connection,
    helo_name: str,
    context: ssl.SSLContext,
    sni: str,
    *,
    required: bool,
) -> None:
    if not session.capabilities.starttls:
        if required:
            raise TlsError("TLS is required but the server does not offer STARTTLS")
        return
    rep = await session.command(STARTTLS, session.timeouts.ehlo, "STARTTLS")
    if rep.code == 421:
        raise SessionRefused(f"server closed the session: {rep}", rep)
    if rep.code != 220:
        if required:
            raise TlsError(f"STARTTLS refused: {rep}")
        return  # opportunistic: RFC 3207 lets us carry on in plaintext on this connection
    if conn.has_pending_input:  # CVE-2011-0411 style injection: nothing may precede TLS
        raise ProtocolFailure("server sent data after its reply to STARTTLS")
    t = session.timeouts.tls_handshake
    try:
        await io_step(conn.start_tls(context, sni, t), t + 1.0, "TLS handshake")
    except DeliveryError as exc:
        conn.abort()
        reason = exc.text.removeprefix("TLS error: ")
        raise _HandshakeFailed(TlsError(f"TLS handshake failed: {reason}")) from None
    session.tls_active = True
    session.tls_version = conn.tls_version
    await _ehlo(session, helo_name)  # RFC 3207 §4.2: forget everything learnt before TLS


async def _authenticate(session: ClientSession, username: str, password: str) -> None:
    """AUTH PLAIN with an initial response, else AUTH LOGIN (RFC 4954)."""
    caps, t = session.capabilities, session.timeouts.ehlo
    if not caps.has("AUTH"):
        raise AuthenticationFailed("authentication failed: the server does not offer AUTH")
    if "PLAIN" in caps.auth_mechanisms:
        rep = await session.command(auth_plain_command(username, password), t, "AUTH")
        if rep.code == 334:  # it wanted the response separately; do not guess, cancel
            rep = await session.command(AUTH_CANCEL, t, "AUTH")
            raise AuthenticationFailed("authentication failed: AUTH PLAIN was not completed", rep)
    elif "LOGIN" in caps.auth_mechanisms:
        rep = await session.command(auth_login_command(), t, "AUTH")
        for value in (username, password):
            if rep.code != 334:
                break
            rep = await session.command(auth_response(value), t, "AUTH")
    else:
        raise AuthenticationFailed(
            "authentication failed: the server offers neither AUTH PLAIN nor AUTH LOGIN"
        )
    if rep.code != 235:
        _unexpected(rep, "AUTH")
        raise AuthenticationFailed(f"authentication failed: {rep}", rep)
    session.authenticated = True
