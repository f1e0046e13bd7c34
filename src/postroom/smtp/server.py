"""The asyncio SMTP server: bind the listeners, and at shutdown drain their sessions.

The listener knows bytes and replies, nothing about queues: every decision about who may send
what is delegated to a `SubmissionHandler` (injected by `postroom.runtime`), as Postfix's smtpd
hands mail to cleanup. This module is the process-level part and the import point of the server;
the rest is split by concern:
- `server_connection`: `SmtpProtocol`, one connection (transport callbacks, the driver task that
  answers the engine's events, timers, writes) around the sans-IO `server_protocol` engine;
- `server_answers`: its handler-facing half (MAIL, RCPT, AUTH, STARTTLS, end of message);
- `server_session`: the values (options, listeners, `Session`, the `SubmissionHandler` port).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from postroom.smtp.server_connection import SmtpProtocol, client_ip
from postroom.smtp.server_session import (
    ConnectionLimiter,
    ListenerConfig,
    ServerOptions,
    Session,
    SubmissionHandler,
)

__all__ = ["ConnectionLimiter", "ListenerConfig", "ServerOptions", "Session", "SmtpProtocol",
           "SubmissionHandler", "client_ip", "close_sessions", "start_listeners"]


async def start_listeners(
    opts: ServerOptions,
    listeners: list[ListenerConfig],
    handler_factory: Callable[[], SubmissionHandler],
    *,
    reuse_port: bool = False,
) -> list[asyncio.Server]:
    """Bind every listener; implicit-TLS ones wrap the socket before the banner."""
    loop = asyncio.get_running_loop()
    servers = []
    for lc in listeners:
        ctx = opts.ssl_context if lc.implicit_tls else None
        if lc.implicit_tls and ctx is None:
            raise ValueError(f"listener {lc.name} needs a TLS certificate")
        server = await loop.create_server(
            lambda lc=lc: SmtpProtocol(opts, lc, handler_factory()),
            lc.host, lc.port, ssl=ctx, reuse_address=True, reuse_port=reuse_port,
            backlog=1024, ssl_handshake_timeout=30 if ctx else None,
        )
        servers.append(server)
    return servers


async def close_sessions(opts: ServerOptions, grace: float) -> None:
    """Shutdown, after the listeners stopped accepting: sessions between transactions get
    `421 4.3.2` at once; one in a transaction may finish it (its commit still reaches the store)
    for up to `grace` seconds, then gets 421. Returns once every session has ended.

    Each session does its part itself (`SmtpProtocol.drain` and `cut`); `opts.live` holds them."""
    opts.draining = True
    for proto in list(opts.live):
        proto.drain()
    left = await _wait_sessions(opts, grace)
    for proto in left:
        proto.cut()
    await _wait_sessions(opts, 1.0)


async def _wait_sessions(opts: ServerOptions, timeout: float) -> list[SmtpProtocol]:
    """Wait for the live sessions' drivers to end; returns those still running."""
    tasks = {proto._task for proto in opts.live}
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    return list(opts.live)
