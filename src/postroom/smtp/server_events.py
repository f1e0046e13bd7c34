"""What the server engine says to its caller: the events `next_event()` returns, and the phases.

Kept apart from `server_protocol` so the adapter and the tests can name the vocabulary without the
machinery, as h11 keeps `_events.py` apart from `_connection.py`. Events are frozen, slotted and
final: the adapter and `ServerConnection.send` dispatch on `type(event) is X`, so never subclass
them. Everything in `__all__` is re-exported by `server_protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply

__all__ = [
    "CONNECTION_CLOSED", "DATA_START", "NEED_DATA", "QUIT", "Auth", "ConnectionClosed", "DataStart",
    "EndOfMessage", "Event", "Hello", "Mail", "MessageData", "Phase", "Quit", "Rcpt", "Respond",
    "StartTls",
]


@dataclass(frozen=True, slots=True)
class Hello:
    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class StartTls:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    mechanism: str
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Mail:
    path: Path


@dataclass(frozen=True, slots=True)
class Rcpt:
    path: Path


@dataclass(frozen=True, slots=True)
class DataStart:
    pass


@dataclass(frozen=True, slots=True)
class MessageData:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    size: int
    oversized: bool


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Respond:
    """The engine's own answer (errors, prompts, NOOP/RSET/VRFY/HELP); send it as is."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    pass


class _Need:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _Need()
# The events without fields are shared: one allocation fewer per command.
DATA_START, QUIT, CONNECTION_CLOSED = DataStart(), Quit(), ConnectionClosed()
Event = (
    Hello | StartTls | Auth | Mail | Rcpt | DataStart | MessageData | EndOfMessage | Quit
    | Respond | ConnectionClosed
)


class Phase(Enum):
    COMMAND = "command"
    AUTH_PLAIN = "auth-plain"
    AUTH_USERNAME = "auth-username"
    AUTH_PASSWORD = "auth-password"
    DATA = "data"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"
