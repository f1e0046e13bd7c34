"""What the SMTP server is configured with and what it hands to its policy: listeners, limits,
options, the per-connection `Session` and the `SubmissionHandler` port. Values only, no I/O.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply, reply
from postroom.smtp.spool import Spool


@dataclass(slots=True)
class Session:
    """What the handler may know and remember about one connection."""

    peer_ip: str
    listener: str
    tls: bool = False
    helo: str = ""
    identity: Any = None  # set by the handler: the authenticated (or trusted) account
    mail_from: str | None = None
    mail_params: dict[str, str | None] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class SubmissionHandler(Protocol):
    """The policy side of the server. Each method returns the reply to send."""

    async def connection_opened(self, session: Session) -> None: ...

    async def authenticate(self, session: Session, username: str, password: str) -> Reply: ...

    async def mail_from(self, session: Session, path: Path) -> Reply: ...

    async def rcpt_to(self, session: Session, path: Path) -> Reply: ...

    async def message(self, session: Session, body: Spool) -> Reply: ...


@dataclass
class ListenerConfig:
    name: str  # "plain", "implicit_tls" or "starttls"
    host: str
    port: int
    implicit_tls: bool = False
    require_tls: bool = False  # the submission port: MAIL/AUTH only after STARTTLS


class ConnectionLimiter:
    """Counts open connections in total and per client IP (one process)."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.open = 0
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        if self.open >= self.total or self.by_ip.get(ip, 0) >= self.per_ip:
            return False
        self.open += 1
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        self.open -= 1
        left = self.by_ip.get(ip, 1) - 1
        if left:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)


@dataclass
class ServerOptions:
    hostname: str
    max_message_size: int
    max_recipients: int
    allow_plaintext_auth: bool
    idle_timeout: float
    data_timeout: float
    ssl_context: ssl.SSLContext | None
    limiter: ConnectionLimiter
    # the connections being served, and whether the process is shutting down (see
    # `server.close_sessions`): state, but one per process like `limiter`
    live: set[Any] = field(default_factory=set, repr=False)
    draining: bool = False
    _ehlo: dict[tuple[str, ...], Reply] = field(default_factory=dict, repr=False)

    @cached_property
    def banner(self) -> bytes:
        return f"220 {self.hostname} ESMTP Postroom ready\r\n".encode()

    def ehlo_reply(self, keywords: list[str]) -> Reply:
        """The EHLO answer depends only on the keywords offered: built once per set."""
        key = tuple(keywords)
        found = self._ehlo.get(key)
        if found is None:
            found = self._ehlo[key] = reply(250, None, self.hostname, *keywords)
        return found
