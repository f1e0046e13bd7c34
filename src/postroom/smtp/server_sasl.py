"""The server engine's AUTH sub-state machine (RFC 4954; SASL PLAIN per RFC 4616, and LOGIN).

A mixin of `ServerConnection`: `_on_auth` checks the AUTH command and either decodes its initial
response or moves the engine into one of the `Phase.AUTH_*` phases, in which every input line is a
SASL response handed to `_auth_step` instead of a command. The outcome is an `Auth` event with the
decoded credentials (the caller verifies them and answers 235 or 535) or a `Respond` with a prompt
or an error; "*" cancels (501), an over-long response fails it (500 5.5.6). Credentials are
checked outside: this only speaks the exchange.
"""

from __future__ import annotations

import base64
import binascii

from postroom.smtp import replies as R
from postroom.smtp.replies import reply
from postroom.smtp.server_events import Auth, Event, Phase, Respond

_BAD_BASE64 = reply(501, "5.5.2", "Invalid base64 data")
_RESPONSE_TOO_LONG = reply(500, "5.5.6", "Authentication Exchange line is too long")  # RFC 4954 §4
SEND_HELLO = reply(503, "5.5.1", "Send EHLO/HELO first")  # MAIL's too (`server_commands`)


class SaslSteps:
    """AUTH PLAIN and AUTH LOGIN, as `ServerConnection` methods (its `auth_offered` decides)."""

    # set by ServerConnection (annotations only: no class attributes)
    phase: Phase
    greeted: bool
    authenticated: bool
    in_transaction: bool
    auth_offered: bool
    _auth_mech: str
    _auth_user: str

    def _on_auth(self, arg: str) -> Event:
        if not self.greeted:
            return Respond(SEND_HELLO)
        if not self.auth_offered:
            return Respond(R.R538_ENCRYPTION_REQUIRED)
        if self.authenticated:
            return Respond(R.R503_ALREADY_AUTH)
        if self.in_transaction:
            return Respond(R.R503_BAD_SEQUENCE)
        mech, _, initial = arg.partition(" ")
        mech, initial = mech.upper(), initial.strip()
        if mech not in ("PLAIN", "LOGIN"):
            return Respond(R.R504_AUTH_MECH if mech else R.R501_SYNTAX)
        self._auth_mech = mech
        if not initial:
            self.phase = Phase.AUTH_PLAIN if mech == "PLAIN" else Phase.AUTH_USERNAME
            return Respond(R.R334_EMPTY if mech == "PLAIN" else R.R334_USERNAME)
        self.phase = Phase.AUTH_PLAIN if mech == "PLAIN" else Phase.AUTH_USERNAME
        return self._auth_step(initial)

    def _auth_step(self, line: str) -> Event:
        if line.strip() == "*":
            self._auth_reset_if_needed()
            return Respond(R.R501_AUTH_CANCELLED)
        try:
            decoded = b"" if line.strip() == "=" else base64.b64decode(line, validate=True)
            text = decoded.decode("utf-8")
        except (binascii.Error, ValueError):
            self._auth_reset_if_needed()
            return Respond(_BAD_BASE64)
        if self.phase is Phase.AUTH_USERNAME:
            self._auth_user = text
            self.phase = Phase.AUTH_PASSWORD
            return Respond(R.R334_PASSWORD)
        self.phase = Phase.COMMAND
        if self._auth_mech == "LOGIN":
            return Auth("LOGIN", self._auth_user, text)
        parts = text.split("\x00")
        if len(parts) != 3:
            return Respond(_BAD_BASE64)
        return Auth("PLAIN", parts[1], parts[2])

    def _auth_line_too_long(self) -> Event:
        """A SASL response past `MAX_AUTH_LINE` (already discarded): RFC 4954 §4 names its own
        reply for it, not the command line's 500 5.5.2; the exchange fails."""
        self.phase = Phase.COMMAND
        return Respond(_RESPONSE_TOO_LONG)

    def _auth_reset_if_needed(self) -> None:
        if self.phase in (Phase.AUTH_PLAIN, Phase.AUTH_USERNAME, Phase.AUTH_PASSWORD):
            self.phase = Phase.COMMAND
