"""Find every control header in a header block, parse it, and cut it out.

`extract` works on bytes so that what it leaves is the client's message byte for byte: other
fields keep their case, folding and line endings (CRLF, bare LF or bare CR, mixed). A field runs
from a line that does not start with space or tab to the next such line, as in RFC 5322 and in
Python's email parser, so a control field can neither hide behind a bare CR nor survive in part.
Everything from the first empty line on (the body, if the caller passed it) is returned as is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace

from postroom.dialects import infobip, mailgun, postmark, postroom, sendgrid, ses, zeptomail, zoho
from postroom.dialects.options import SendOptions
from postroom.dialects.table import Dialect, check_limits
from postroom.dialects.values import MAX_VALUE, DialectError, show

# Lowest precedence first: each one's options are merged over the ones before it.
DIALECTS: tuple[Dialect, ...] = tuple(m.DIALECT for m in (
    ses, postmark, mailgun, sendgrid, infobip, zeptomail, zoho, postroom))

_HEADERS = frozenset().union(*(d.headers for d in DIALECTS))
_PREFIXES = tuple(p for d in DIALECTS for p in d.prefixes)
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_FOLD = re.compile(rb"(?:\r\n|\r|\n)(?=[ \t])")
_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")
# A run of encoded-words, each a word of its own: whitespace or the value's edge on both sides.
_WORDS = re.compile(rf"(?<![^ \t]){_WORD.pattern}(?:[ \t]+{_WORD.pattern})*(?![^ \t])")


def is_control_header(name: str) -> bool:
    """True for a header some dialect owns (case-insensitive; `Name :` counts as `Name`)."""
    name = name.strip().lower()
    return name in _HEADERS or name.startswith(_PREFIXES)


def control_headers(raw_header_block: bytes) -> list[str]:
    """The names of the control fields in a header block, as written (none: [])."""
    names = []
    for tail, field in _fields(raw_header_block):
        m = None if tail else _NAME.match(field)
        if m and is_control_header(name := m.group(1).decode("ascii")):
            names.append(name)
    return names


def extract(raw_header_block: bytes) -> tuple[SendOptions, bytes]:
    """(the merged options, the header block without any control field).

    Raises `DialectError` naming the first malformed header; the caller answers
    `550 5.6.0 <header>: <problem>` and queues nothing.
    """
    kept: list[bytes] = []
    found: list[tuple[str, str]] = []
    cut = ""  # the control header cut out since the last kept piece
    for tail, field in _fields(raw_header_block):
        m = None if tail else _NAME.match(field)
        name = m.group(1).decode("ascii") if m else ""
        if m and is_control_header(name):
            found.append((name, _value(name, field[m.end():])))
            cut = name
            continue
        if cut and kept and kept[-1].endswith(b"\r") and field.startswith(b"\n"):
            # bare CR + bare LF would join into one CRLF and move the end of the header block
            raise DialectError(cut, "follows a line ending in a bare CR; end lines with CRLF")
        kept.append(field)
        cut = ""
    return parse_all(found), b"".join(kept)


def parse_all(headers: list[tuple[str, str]]) -> SendOptions:
    """Every dialect's reading of `headers` (unfolded, decoded), merged by precedence.

    Template-only variables become global variables when the message uses a template (under
    the global ones: only X-Postroom-*, which ranks above Mailgun, gives those) and are
    dropped otherwise: a plain body's `{{ x }}` is text then.
    """
    options = SendOptions()
    for dialect in DIALECTS:
        mine = [name for name, _ in headers if dialect.owns(name)]
        if mine:
            options = options.merge(dialect.parse(headers))
            check_limits(mine[-1], options)
    if options.template_vars:
        used = {**options.template_vars, **options.global_vars} if options.template_id \
            else options.global_vars
        options = replace(options, template_vars={}, global_vars=used)
    return options


def _fields(block: bytes) -> list[tuple[bool, bytes]]:
    """(is the tail, bytes) pieces that join back to `block`: fields, then the rest from the first
    empty line. Continuation lines before any field stand alone as fields without a name."""
    pieces: list[list[bytes]] = []
    tail = b""
    lines = _LINE.findall(block)
    for i, line in enumerate(lines):
        if not line.rstrip(b"\r\n"):
            tail = b"".join(lines[i:])
            break
        if line[:1] in (b" ", b"\t") and pieces:
            pieces[-1].append(line)
        else:
            pieces.append([line])
    return [(False, b"".join(p)) for p in pieces] + [(True, tail)]


def _value(name: str, raw: bytes) -> str:
    """Unfolded (RFC 5322 §2.2.3), UTF-8 (RFC 6532) and RFC 2047 decoded, trimmed."""
    if len(raw) > MAX_VALUE:
        raise DialectError(name, "value is too large")
    try:
        value = _FOLD.sub(b"", raw).decode("utf-8")
    except UnicodeDecodeError:
        raise DialectError(name, "value is not valid UTF-8") from None
    return decode_words(name, value.strip(" \t\r\n"))


def decode_words(name: str, value: str) -> str:
    """RFC 2047 encoded-words, as mail libraries write non-ASCII (or long) header values.

    Only where RFC 2047 §5 allows them in text: a word of its own, with whitespace (or the
    value's start or end) on both sides; `abc=?utf-8?q?x?=` is text. Adjacent words join (§6.2)
    before decoding, so a character split across two words survives. A value that is a JSON
    object or array as written is never decoded: its strings are data (an encoded-word in one is
    kept), and JSON a mail library encoded is not JSON until decoded (the words cut across its
    strings), so it still is.
    """
    if "=?" not in value or not _WORDS.search(value):
        return value
    if value[:1] in "{[" and _is_json(value):
        return value
    return _WORDS.sub(lambda run: _decode_run(name, run.group(0)), value)


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except (ValueError, RecursionError):
        return False
    return True


def _decode_run(name: str, run: str) -> str:
    parts: list[tuple[str, list[bytes]]] = []  # adjacent words of one charset, joined
    for charset, encoding, data in _WORD.findall(run):
        try:
            if encoding in "Bb":
                raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
            else:
                raw = re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]),
                             data.replace("_", " ").encode("ascii"))
        except (binascii.Error, UnicodeError):
            raise DialectError(name, "bad RFC 2047 encoded-word") from None
        if not parts or parts[-1][0] != charset.lower():
            parts.append((charset.lower(), []))
        parts[-1][1].append(raw)
    out = []
    for charset, chunks in parts:
        try:
            out.append(b"".join(chunks).decode(charset))
        except LookupError:
            raise DialectError(name, f"unknown charset {show(charset)}") from None
        except UnicodeError:
            raise DialectError(name, "bad RFC 2047 encoded-word") from None
    return "".join(out)
