"""Errors of the SMTP protocol core, modelled by who is at fault (after h11's `_util.py`).

    ProtocolError                 never raised directly
    ├── LocalProtocolError        our own code broke the protocol (a bug: e.g. two replies
    │                             to one command); it is a programming error, never the peer's
    └── RemoteProtocolError       the peer sent something unusable; carries `reply`, the answer
                                  a server should send before it closes (a client just closes)

The server engine answers most peer mistakes itself with a 5xx and carries on, as RFC 5321 asks;
`RemoteProtocolError` is reserved for input that cannot be recovered from.
"""

from __future__ import annotations

from postroom.smtp.replies import R500_LINE_TOO_LONG, Reply


class ProtocolError(Exception):
    def __init__(self, message: str, reply: Reply | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.reply = reply


class LocalProtocolError(ProtocolError):
    """We tried to do something SMTP does not allow (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot go on with."""

    def __init__(self, message: str, reply: Reply | None = R500_LINE_TOO_LONG) -> None:
        super().__init__(message, reply)
