"""The headers a message's page shows, read from its stored header block.

The block is user data of up to a MiB (`store.dashboard_messages.HEAD_CAP`), and the stdlib's
modern header parser (`email.policy.default`) takes tens of seconds on crafted values of a few
dozen KB. So this does bounded work only: a plain line scan that unfolds the shown fields, each
value cut at `VALUE_CAP` characters and each name shown at most `PER_NAME` times (the page says
what was left out), and RFC 2047 words decoded with `email.header.decode_header`, which is
linear. Callers run it off the event loop all the same (`web.context.run`).
"""

from __future__ import annotations

import email.header
import re
from dataclasses import dataclass, field

from postroom.store.dashboard_data import HeaderBlock

#: Headers shown on a message's page, as stored (after providers' control headers were read
#: and stripped); Bcc is never among them.
SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
                 "In-Reply-To", "List-Unsubscribe")
#: Characters of one header value shown (counted before decoding).
VALUE_CAP = 4096
#: Fields of one name shown (a block may repeat a header).
PER_NAME = 20
_SHOWN = {name.lower(): name for name in SHOWN_HEADERS}
_LINE = re.compile(r"\r?\n")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class ShownHeader:
    name: str
    value: str
    #: characters of the value left out (0: shown whole)
    cut: int = 0


@dataclass(frozen=True, slots=True)
class ShownHeaders:
    fields: list[ShownHeader]
    #: name -> how many more fields of that name the block holds than are shown
    left_out: dict[str, int] = field(default_factory=dict)
    #: False when the stored header block had no end within the read cap (it was cut there)
    complete: bool = True


def shown_headers(block: HeaderBlock) -> ShownHeaders:
    """The shown headers of `block`, in the order of `SHOWN_HEADERS`, decoded (RFC 2047 words
    and UTF-8; undecodable bytes become U+FFFD, a malformed encoded word is shown as written)."""
    found: dict[str, list[tuple[str, int]]] = {}
    counts: dict[str, int] = {}
    for name, value, dropped in _fields(block.data.decode("utf-8", errors="replace")):
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= PER_NAME:
            found.setdefault(name, []).append((value, dropped))
    out = [_shown(name, *got) for name in SHOWN_HEADERS for got in found.get(name, ())]
    return ShownHeaders(out, {n: c - PER_NAME for n, c in counts.items() if c > PER_NAME},
                        block.complete)


def _fields(text: str) -> list[tuple[str, str, int]]:
    """(canonical name, unfolded value, characters dropped past the cap) of each shown field;
    other fields are skipped. One pass, whatever the folding."""
    out: list[tuple[str, str, int]] = []
    name: str | None = None
    parts: list[str] = []
    size = dropped = 0
    for line in _LINE.split(text):
        if line[:1] in (" ", "\t"):
            if name is None:
                continue
            if size <= VALUE_CAP:
                parts.append(line)
                size += len(line)
            else:
                dropped += len(line)
            continue
        if name is not None:
            out.append((name, "".join(parts), dropped))
        key, colon, value = line.partition(":")
        name = _SHOWN.get(key.strip().lower()) if colon else None
        parts, size, dropped = [value], len(value), 0
    if name is not None:
        out.append((name, "".join(parts), dropped))
    return out


def _shown(name: str, raw: str, dropped: int) -> ShownHeader:
    value = raw.strip()
    cut = max(0, len(value) - VALUE_CAP) + dropped
    text = " ".join(_decode(value[:VALUE_CAP]).split())
    return ShownHeader(name, _CONTROL.sub("\ufffd", text), cut)


def _decode(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        parts = email.header.decode_header(value)
    except Exception:  # a malformed encoded word: shown as written
        return value
    out = []
    for part, charset in parts:
        if isinstance(part, str):
            out.append(part)
        elif charset is None:  # text between encoded words, as decode_header encoded it
            out.append(part.decode("raw-unicode-escape", errors="replace"))
        else:
            try:
                out.append(part.decode(charset.split("*")[0], errors="replace"))
            except LookupError:
                out.append(part.decode("utf-8", errors="replace"))
    return "".join(out)
