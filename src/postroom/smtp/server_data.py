"""The server engine's DATA phase: the message streamed out in chunks, dot-unstuffed, size-capped.

A mixin of `ServerConnection`. After the 354, input collects in `_data`, which starts with a CRLF
of our own so that a terminator or a stuffed dot on the first line looks like any other. The
terminator is exactly CRLF.CRLF (RFC 5321 §4.1.1.4): bare-LF variants are data, which closes SMTP
smuggling. Each call emits everything up to the last CRLF seen, so no terminator and no "CRLF.."
can straddle a cut: unstuffing (§4.5.2) stays exact on every chunk while memory stays bounded.
Past `max_message_size` the rest is read and discarded, and `EndOfMessage.oversized` is set.
"""

from __future__ import annotations

from postroom.smtp.server_events import (
    CONNECTION_CLOSED,
    NEED_DATA,
    EndOfMessage,
    Event,
    MessageData,
    Phase,
    _Need,
)


class DataStream:
    """`_next_data_event` and its helper, as `ServerConnection` methods."""

    # set by ServerConnection (annotations only: no class attributes)
    max_message_size: int
    phase: Phase
    _buf: bytearray
    _eof: bool
    _awaiting: Event | None
    _tail_event: Event | None
    _data: bytearray  # "\r\n" + the message bytes not yet emitted
    _data_first: bool
    _data_size: int

    _pending_chunk: bytes = b""  # the part of the last chunk within the size limit

    def _next_data_event(self) -> Event | _Need:
        buf = self._data
        end = buf.find(b"\r\n.\r\n")
        if end >= 0:
            chunk = bytes(buf[: end + 2])
            rest = bytes(buf[end + 5 :])
            self._buf[:0] = rest
            self._data = bytearray()
            self.phase = Phase.COMMAND
            self._emit_data(chunk)
            pending, self._pending_chunk = self._pending_chunk, b""
            event: Event = EndOfMessage(self._data_size, self._data_size > self.max_message_size)
            if pending:
                self._tail_event = event
                return MessageData(pending)
            self._awaiting = event
            return event
        if self._eof:
            self.phase = Phase.CLOSED
            return CONNECTION_CLOSED
        # Emit everything up to the last CRLF (or nearly all of a huge line): no terminator or
        # "\r\n.." can straddle that cut, so unstuffing stays exact while memory stays bounded.
        cut = buf.rfind(b"\r\n")
        if cut <= 0:
            if len(buf) < 65536:
                return NEED_DATA
            cut = len(buf) - (1 if buf.endswith(b"\r") else 0)
        chunk = bytes(buf[:cut])
        del buf[:cut]
        self._emit_data(chunk)
        pending, self._pending_chunk = self._pending_chunk, b""
        return MessageData(pending) if pending else NEED_DATA

    def _emit_data(self, chunk: bytes) -> None:
        data = chunk.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2: drop one leading dot
        if self._data_first:
            data, self._data_first = data[2:], False
        before = self._data_size
        self._data_size += len(data)
        if before < self.max_message_size:
            self._pending_chunk = data[: self.max_message_size - before] if (
                self._data_size > self.max_message_size
            ) else data
