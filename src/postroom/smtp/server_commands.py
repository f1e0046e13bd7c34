"""The server engine's command dispatch: the verb table, and each envelope command's checks.

A mixin of `ServerConnection` (its state lives there). `_dispatch` turns one command line into an
event through `_HANDLERS` (verb → function, one dict lookup and one call per command); each
`_on_<verb>(arg)` returns the event for the caller to answer, or a `Respond` with the error that
RFC 5321 says a server sends and survives (syntax, order, parameters, limits). The checks only read
the session's state, except RSET; `ServerConnection.send` moves it on from the reply the caller
chose. Each verb's rules (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3207 STARTTLS) read
in one place here; the AUTH exchange is in `server_sasl`.
"""

from __future__ import annotations

from postroom.smtp import replies as R
from postroom.smtp.commands import Path, PathError, parse_path, split_command
from postroom.smtp.replies import reply
from postroom.smtp.server_events import (
    DATA_START,
    QUIT,
    Event,
    Hello,
    Mail,
    Phase,
    Rcpt,
    Respond,
    StartTls,
)
from postroom.smtp.server_sasl import SEND_HELLO, SaslSteps

_NESTED_MAIL = reply(503, "5.5.1", "Sender already specified")
_NEED_MAIL = reply(503, "5.5.1", "Need MAIL command first")
_NEED_RCPT = reply(503, "5.5.1", "Need RCPT command first")
_HELO_SYNTAX = reply(501, "5.5.4", "Syntax: HELO hostname")
_EHLO_SYNTAX = reply(501, "5.5.4", "Syntax: EHLO hostname")
_UTF8_NEEDED = reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
_TLS_ACTIVE = reply(503, "5.5.1", "TLS already active")


class CommandChecks:
    """The dispatch and EHLO/HELO, MAIL, RCPT, DATA, RSET, STARTTLS, as `ServerConnection`
    methods (RSET calls its `_reset_transaction`; AUTH lines go to `SaslSteps`)."""

    # set by ServerConnection.__init__ (annotations only: no class attributes)
    phase: Phase
    max_message_size: int
    max_recipients: int
    tls_active: bool
    tls_available: bool
    greeted: bool
    in_transaction: bool
    smtputf8: bool
    recipients: int
    rcpt_attempts: int

    def _dispatch(self, line: str) -> Event:
        if line == "\x00too-long":
            if self.phase is not Phase.COMMAND:
                return self._auth_line_too_long()
            return Respond(R.R500_LINE_TOO_LONG)
        if self.phase is not Phase.COMMAND:
            return self._auth_step(line)
        verb, arg = split_command(line)
        handler = _HANDLERS.get(verb)
        if handler is None:
            return Respond(R.R500_UNKNOWN)
        return handler(self, arg)

    def _on_hello(self, arg: str, extended: bool) -> Event:
        name = arg.split(" ")[0] if arg else ""
        if not name:
            return Respond(_EHLO_SYNTAX if extended else _HELO_SYNTAX)
        return Hello(name, extended)

    def _on_mail(self, arg: str) -> Event:
        if not self.greeted:
            return Respond(SEND_HELLO)
        if self.in_transaction:
            return Respond(_NESTED_MAIL)
        try:
            path = parse_path(arg, "FROM", allow_null=True)
        except PathError as exc:
            if exc.kind == "address":
                return Respond(R.bad_sender(exc.address))
            return Respond(R.R501_SYNTAX)
        return self._check_mail_params(path)

    def _check_mail_params(self, path: Path) -> Event:
        for key, value in path.params.items():
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 15:
                    return Respond(R.R501_SYNTAX)
                if int(value) > self.max_message_size:
                    return Respond(R.R552_TOO_BIG)
            elif key == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    return Respond(R.R555_PARAM)
            elif key == "SMTPUTF8":
                if value is not None:
                    return Respond(R.R501_SYNTAX)
            elif key != "AUTH":  # RFC 4954 AUTH=<> is harmless; everything else is unknown
                return Respond(R.R555_PARAM)
        if not path.address.isascii() and "SMTPUTF8" not in path.params:
            return Respond(_UTF8_NEEDED)
        return Mail(path)

    def _on_rcpt(self, arg: str) -> Event:
        if not self.in_transaction:
            return Respond(_NEED_MAIL)
        try:
            path = parse_path(arg, "TO", allow_null=False)
        except PathError as exc:
            if exc.kind == "address":
                return Respond(R.bad_recipient(exc.address))
            return Respond(R.R501_SYNTAX)
        if path.params:
            return Respond(R.R555_PARAM)
        if not self.smtputf8 and not path.address.isascii():  # as MAIL answers it
            return Respond(_UTF8_NEEDED)
        if self.recipients >= self.max_recipients:
            return Respond(R.R452_TOO_MANY_RCPTS)
        return Rcpt(path)

    def _on_data(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        if not self.in_transaction:
            return Respond(_NEED_MAIL)
        if self.recipients == 0:
            return Respond(R.R554_NO_VALID_RCPTS if self.rcpt_attempts else _NEED_RCPT)
        return DATA_START

    def _on_rset(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        self._reset_transaction()
        return Respond(R.R250_RESET)

    def _on_starttls(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        if self.tls_active:
            return Respond(_TLS_ACTIVE)
        if not self.tls_available:
            return Respond(R.R454_TLS_UNAVAILABLE)
        return StartTls()


_HELP = reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321 ; commands: EHLO HELO "
              "MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH")


def _handlers() -> dict[str, object]:
    c = CommandChecks
    return {
        "EHLO": lambda s, a: c._on_hello(s, a, True),
        "HELO": lambda s, a: c._on_hello(s, a, False),
        "MAIL": c._on_mail,
        "RCPT": c._on_rcpt,
        "DATA": c._on_data,
        "RSET": c._on_rset,
        "NOOP": lambda s, a: Respond(R.R250_OK),
        "QUIT": lambda s, a: QUIT,
        "VRFY": lambda s, a: Respond(R.R252_VRFY if a else R.R501_SYNTAX),
        "EXPN": lambda s, a: Respond(R.R502_NOT_IMPLEMENTED),
        "HELP": lambda s, a: Respond(_HELP),
        "STARTTLS": c._on_starttls,
        "AUTH": SaslSteps._on_auth,
        "BDAT": lambda s, a: Respond(R.R502_NOT_IMPLEMENTED),
    }


_HANDLERS: dict = _handlers()
