"""Failures of the outbound SMTP client and the per-step timeouts (re-exported by `client`).

Every network step runs through `io_step`, which maps OSError, ssl.SSLError, timeouts and
protocol errors to the small `DeliveryError` tree, so callers never see raw exceptions.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar

from postroom.smtp.client_protocol import RemoteProtocolError
from postroom.smtp.replies import Reply

T = TypeVar("T")
TlsPolicy = Literal["off", "opportunistic", "required"]


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds allowed per step; defaults are RFC 5321 §4.5.3.2's minimums."""

    connect: float = 30.0
    greeting: float = 300.0  # §4.5.3.2.1 initial 220: 5 minutes
    ehlo: float = 300.0  # also STARTTLS, AUTH and RSET
    tls_handshake: float = 60.0
    mail: float = 300.0  # §4.5.3.2.2
    rcpt: float = 300.0  # §4.5.3.2.3
    data_init: float = 120.0  # §4.5.3.2.4: the 354
    data_block: float = 180.0  # §4.5.3.2.5: each block of message data
    data_final: float = 600.0  # §4.5.3.2.6: the reply to the final dot
    quit: float = 30.0  # nothing waits on the 221; do not hang on it


class DeliveryError(Exception):
    """A session-level failure; `text` is short and fit for a delivery log or a bounce."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ConnectError(DeliveryError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""


class TlsError(DeliveryError):
    """STARTTLS was required but unavailable, or the handshake/verification failed."""


class SmtpTimeout(DeliveryError):
    """The peer did not answer (or read) in time; `command` says which step was waiting."""

    _TEXTS = {
        "greeting": "timeout waiting for the greeting",
        "DOT": "timeout waiting for the reply to the end of data",
        "DATA block": "timeout sending message data",
        "TLS handshake": "timeout during the TLS handshake",
    }

    def __init__(self, command: str) -> None:
        super().__init__(self._TEXTS.get(command, f"timeout waiting for the reply to {command}"))
        self.command = command


class ProtocolFailure(DeliveryError):
    """The peer broke the protocol (malformed or unexpected replies)."""


class ConnectionLost(DeliveryError):
    """The connection closed or reset in the middle of the conversation."""


class SessionRefused(DeliveryError):
    """The peer refused the session (banner, EHLO/HELO); `reply` is its answer, if any."""

    def __init__(self, text: str, reply: Reply | None = None) -> None:
        super().__init__(text)
        self.reply = reply


class AuthenticationFailed(SessionRefused):
    """AUTH was needed (credentials given) and did not succeed."""


async def io_step(aw: Awaitable[T], timeout: float | None, command: str) -> T:
    """Run one network step under `timeout`, mapping every failure to a DeliveryError."""
    try:
        if timeout is None:  # bounded elsewhere (e.g. `Connection.read_reply(timeout)`)
            return await aw
        async with asyncio.timeout(timeout):
            return await aw
    except TimeoutError:
        raise SmtpTimeout(command) from None
    except RemoteProtocolError as exc:
        raise ProtocolFailure(f"protocol error from the server: {exc}") from None
    except ssl.SSLError as exc:
        reason = (exc.reason or "error").lower().replace("_", " ")
        raise TlsError(f"TLS error: {reason}") from None
    except (EOFError, ConnectionError):
        raise ConnectionLost(f"connection lost during {command}") from None
    except OSError as exc:
        raise ConnectionLost(f"connection error during {command}: {_bland(exc)}") from None


def _bland(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
