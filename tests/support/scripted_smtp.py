"""A small scriptable SMTP server for peers that misbehave in ways aiosmtpd will not: a greeting
sent twice, a MAIL FROM refusal for every message, a final-dot reply that never comes.

It runs in the test's own event loop (asyncio streams on 127.0.0.1, an ephemeral port) and
records what it was sent: `log` (command lines), `messages` (message bodies, dot-stuffed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

DotReply = Callable[[int], Awaitable[bytes | None]]


class ScriptedSmtp:
    def __init__(self, *, banner: bytes = b"220 scripted ESMTP\r\n",
                 extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME"),
                 mail_reply: bytes = b"250 2.1.0 ok\r\n",
                 on_dot: DotReply | None = None) -> None:
        """`on_dot(n)`: the reply to the n-th message's final dot (None: hang up)."""
        self.banner, self.extensions, self.mail_reply = banner, extensions, mail_reply
        self.on_dot = on_dot
        self.log: list[bytes] = []
        self.messages: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedSmtp:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(self.banner)
        body: list[bytes] | None = None
        accepted = 0
        try:
            while line := await r.readline():
                if body is not None:
                    if line.rstrip(b"\r\n") != b".":
                        body.append(line)
                        continue
                    self.messages.append(b"".join(body))
                    body = None
                    rep = await self.on_dot(len(self.messages)) if self.on_dot \
                        else b"250 2.0.0 ok\r\n"
                    if rep is None:
                        w.close()
                        return
                    w.write(rep)
                else:
                    self.log.append(line)
                    verb = line.split(b" ", 1)[0].strip().upper()
                    if verb == b"DATA" and accepted:
                        body = []
                    if verb == b"MAIL":
                        accepted = 0
                    elif verb == b"RCPT":
                        accepted += 1
                    w.write(self._reply(verb, accepted))
                    if verb == b"QUIT":
                        w.close()
                        return
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            return

    def _reply(self, verb: bytes, accepted: int) -> bytes:
        if verb == b"EHLO":
            lines = ["scripted", *self.extensions]
            return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n"
                           for i, x in enumerate(lines)).encode()
        return {
            b"HELO": b"250 scripted\r\n", b"MAIL": self.mail_reply,
            b"RCPT": b"250 2.1.5 ok\r\n", b"RSET": b"250 ok\r\n", b"NOOP": b"250 ok\r\n",
            b"DATA": b"354 go\r\n" if accepted else b"554 5.5.1 no valid recipients\r\n",
            b"QUIT": b"221 bye\r\n",
        }.get(verb, b"502 5.5.1 no\r\n")
