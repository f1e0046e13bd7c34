"""The copy each recipient gets, from one stored message (pure: delivery loads what it needs).

The pipeline, in order: template (its subject, HTML and text replace the body; `<%subject%>` and
`<%body%>` bring the message's own) → personalization (`render.personalize`, in the message's
syntax) → file-cache attachments → From override → open and click tracking → List-Unsubscribe.

`Copies(raw, ...)` parses the message once and does every step that is the same for all
recipients. What differs per recipient (placeholders, tracking links and pixel, the To header of
a batch, List-Unsubscribe) becomes a slot in a flattened skeleton, so `render(recipient)` is
string work and one re-encoding per text part, never a MIME parse. A personalized text part is
sent as UTF-8, 7bit when it stays ASCII with short lines, quoted-printable otherwise; a
personalized Subject or To is RFC 2047-encoded when it needs to be. Values never carry line
breaks into a header.

When no copy depends on its recipient (`per_recipient` is false), `shared()` is the one copy for
everyone: the stored bytes themselves when no step changed anything.
"""

from __future__ import annotations

import binascii
import re
import secrets
from base64 import b64encode
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from html import escape

from postroom.model.records import Template
from postroom.render import attachments, personalize, unsubscribe
from postroom.render.addresses import mailbox
from postroom.render.attachments import POLICY, File
from postroom.render.personalize import Substitution, Values, header_safe
from postroom.render.tracking import Links, has_link, rewrite_html, rewrite_text

__all__ = ["Copies", "Recipient", "Tracking", "encode_body", "needs_parsing"]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_URL_IN_TEXT = re.compile(r"https?://")
_BODY_TYPES = ("text/plain", "text/html")


@dataclass(frozen=True, slots=True)
class Tracking:
    """What the copies carry: the open pixel, tracked links (HTML, text), List-Unsubscribe."""

    opens: bool = False
    clicks: bool = False
    text_clicks: bool = False
    unsubscribe: bool = False

    @property
    def any(self) -> bool:
        return self.opens or self.clicks or self.text_clicks or self.unsubscribe


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    position: int | None = None  # index into SendGrid's `sub` lists (no `to` named it)
    mailto: str | None = None  # List-Unsubscribe mailto target for this recipient


@dataclass(slots=True)
class _Part:
    html: bool
    source: str
    jinja: bool  # a template's part: Jinja2 first, then the message's own syntax
    tracked: bool = False  # the pixel or tracked links go in
    dynamic: bool = False  # differs from the source: tracked or has placeholders


@dataclass(slots=True)
class _Plan:
    subject: str | None = None  # the Subject source when it has placeholders
    subject_jinja: bool = False
    to: bool = False  # the To header names the recipient (batch sending)
    parts: list[_Part] = field(default_factory=list)
    pixel: int | None = None  # the part that gets the open pixel (the first HTML part)


def encode_body(text: str) -> tuple[bytes, bytes]:
    """(body bytes with CRLF line ends, Content-Transfer-Encoding) for UTF-8 text."""
    text = _NEWLINE.sub("\r\n", text)
    if not text.endswith("\r\n"):
        text += "\r\n"
    data = text.encode("utf-8", "replace")
    if data.isascii() and b"\0" not in data and (
        len(data) <= 998 or max(map(len, data.split(b"\r\n"))) <= 998
    ):
        return data, b"7bit"
    return binascii.b2a_qp(data, istext=True), b"quoted-printable"


def _fold(name: str, value: str) -> bytes:
    """The folded value of a header (what follows "Name: "): RFC 2047 encoded words (UTF-8,
    base64) when it is not ASCII, folded at spaces to keep lines under 78 characters."""
    value = header_safe(value)
    if not value.isascii():
        return "\r\n ".join(f"=?utf-8?b?{b64encode(w).decode()}?=" for w in _utf8_chunks(value)
                              ).encode("ascii")
    if len(value) + len(name) < 76:
        return value.encode("ascii")
    lines, line = [], ""
    room = 76 - len(name)
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line, room = word, 77
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines).encode("ascii")


def _utf8_chunks(text: str, size: int = 39) -> list[bytes]:
    """UTF-8 bytes in pieces of at most `size`, never splitting a character: an encoded word
    is then 64 characters, and "Subject: " plus one stays under 78."""
    data = text.encode("utf-8")
    chunks = []
    while data:
        cut = min(size, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # a continuation byte
            cut -= 1
        chunks.append(data[:cut])
        data = data[cut:]
    return chunks


def needs_parsing(substitution: Substitution, tracking: Tracking, template: Template | None,
                  files: Sequence[File], sender: tuple[str, str | None] | None) -> bool:
    """Whether any step applies: if not, `Copies` keeps the stored bytes without parsing them
    (cheap enough to build on an event loop)."""
    return bool(template or files or sender or tracking.any or substitution.global_vars
                or substitution.per_recipient)


class Copies:
    def __init__(
        self, raw: bytes, *, message_id: str, account_id: str,
        substitution: Substitution | None = None, tracking: Tracking = Tracking(),
        links: Links | None = None, template: Template | None = None,
        files: Sequence[File] = (), sender: tuple[str, str | None] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.message_id, self.account_id = message_id, account_id
        self.sub = substitution or Substitution()
        self.tracking = tracking if links is not None else Tracking()
        self.links = links
        self.names = names or {}
        self.header_from = sender[0] if sender else None  # overridden From (the DKIM domain)
        self._raw = raw
        self._segments: list[bytes | tuple[str, int]] = []
        self._plan = _Plan()
        self._own_unsubscribe = False
        self.per_recipient = False
        self.error: Exception | None = None  # set by `unrenderable`
        self._shared: bytes | None = None
        if not needs_parsing(self.sub, self.tracking, template, files, sender):
            self._shared = raw  # nothing to do: the stored bytes, untouched
            return
        self._compile(message_from_bytes(raw, _class=EmailMessage, policy=POLICY),
                      template, files, sender)

    @classmethod
    def unrenderable(cls, error: Exception, *, message_id: str, account_id: str) -> Copies:
        """Stands in for a message that could not be prepared: each copy raises `error`, so
        delivery defers this message's recipients and no other message's."""
        copies = cls(b"", message_id=message_id, account_id=account_id)
        copies.error, copies.per_recipient = error, True
        return copies

    # --- per message ---------------------------------------------------------------------------
    def _compile(self, msg: EmailMessage, template: Template | None, files: Sequence[File],
                 sender: tuple[str, str | None] | None) -> None:
        changed = bool(template or files or sender)
        plan = self._plan
        if template is not None:
            _apply_template(msg, template)
        subject = str(msg.get("Subject", ""))
        leaves = [p for p in _leaves(msg) if _is_body_text(p)]
        jinja = template is not None
        has = self._has_placeholders
        plan.parts = [_Part(p.get_content_type() == "text/html", _text_of(p), jinja)
                      for p in leaves]
        t = self.tracking
        batch = self.sub.per_recipient
        for part in plan.parts:
            part.tracked = bool(
                (part.html and (t.opens or (t.clicks and has_link(part.source))))
                or (not part.html and t.text_clicks and _URL_IN_TEXT.search(part.source)))
            part.dynamic = part.tracked or has(part.source, jinja)
        plan.pixel = next((i for i, p in enumerate(plan.parts) if p.html and t.opens), None)
        subject_dynamic = has(subject, jinja)
        self._own_unsubscribe = "List-Unsubscribe" in msg
        texts = (subject, *(p.source for p in plan.parts))
        self.per_recipient = (
            batch or (t.unsubscribe and not self._own_unsubscribe)
            or any(p.tracked for p in plan.parts) or any(map(self.sub.uses_address, texts)))
        nonce = secrets.token_hex(8)

        def marker(kind: str, i: int) -> str:
            return f"PRSLOT{nonce}{kind}{i}E"

        if subject_dynamic:
            plan.subject, plan.subject_jinja = subject, jinja
            _set_header(msg, "Subject", marker("S", 0))
        if batch:
            plan.to = True
            _set_header(msg, "To", marker("T", 0))
        for i, (leaf, part) in enumerate(zip(leaves, plan.parts, strict=True)):
            if part.dynamic:
                _make_slot(msg, leaf, marker("C", i), marker("B", i))
        utf8_from = None
        if sender is not None:  # a UTF-8 address goes in after flattening, as it is
            written = mailbox(header_safe(sender[1] or ""), sender[0])
            utf8_from = None if written.isascii() else written
            _set_header(msg, "From", marker("F", 0) if utf8_from else written)
        attachments.add(msg, files)
        if not (changed or subject_dynamic or batch or any(p.dynamic for p in plan.parts)):
            self._shared = self._raw  # at most List-Unsubscribe differs: it goes in front
            return
        flat = attachments.flatten(msg)
        if utf8_from is not None:
            flat = flat.replace(marker("F", 0).encode(), utf8_from.encode("utf-8"), 1)
        pieces = re.split(rf"PRSLOT{nonce}([STCB])(\d+)E".encode(), flat)
        segments: list[bytes | tuple[str, int]] = []
        for i, piece in enumerate(pieces):
            if i % 3 == 0:
                segments.append(piece)
            elif i % 3 == 1:
                segments.append((piece.decode(), int(pieces[i + 1])))
        self._segments = segments

    @property
    def size(self) -> int:
        """Bytes held (the stored message, or the skeleton copies are made from)."""
        return sum(len(s) for s in self._segments if isinstance(s, bytes)) + len(self._raw)

    def _has_placeholders(self, text: str, jinja: bool) -> bool:
        return (jinja and ("{{" in text or "{%" in text)) or self.sub.has_placeholders(text)

    # --- per recipient -------------------------------------------------------------------------
    def shared(self) -> bytes:
        """The copy every recipient gets when `per_recipient` is false."""
        if self._shared is None:
            self._shared = self._render(Recipient(""), headers=False)
        return self._shared

    def render(self, recipient: Recipient) -> bytes:
        """This recipient's copy (the shared copy plus List-Unsubscribe when that is all)."""
        if self.error is not None:
            raise self.error
        if not self.per_recipient:
            return self.shared()
        return self._render(recipient, headers=True)

    def _render(self, recipient: Recipient, *, headers: bool) -> bytes:
        address = recipient.address
        unsub = ""
        if headers and self.tracking.unsubscribe and self.links is not None:
            unsub = self.links.unsubscribe_url(self.account_id, self.message_id, address)
        values = self.sub.values(address, recipient.position,
                                 {"unsubscribe_url": unsub} if unsub else None)
        prefix = unsubscribe.headers(unsub, recipient.mailto) \
            if unsub and not self._own_unsubscribe else b""
        if self._shared is not None:
            return prefix + self._shared
        bodies: dict[int, tuple[bytes, bytes]] = {}
        out = [prefix]
        for seg in self._segments:
            if isinstance(seg, bytes):
                out.append(seg)
                continue
            kind, i = seg
            if kind == "S":
                out.append(_fold("Subject", self._subject(values)))
            elif kind == "T":
                out.append(self._to(address))
            else:
                if i not in bodies:
                    bodies[i] = encode_body(self._part_text(i, values, headers))
                out.append(bodies[i][1] if kind == "C" else bodies[i][0])
        return b"".join(out)

    def _to(self, address: str) -> bytes:
        """The To field's value for a batch copy; a UTF-8 address as it is (RFC 6532)."""
        value = mailbox(header_safe(self.names.get(address.lower(), "")), address) \
            if address else ""
        return _fold("To", value) if value.isascii() else value.encode("utf-8")

    def _subject(self, values: Values) -> str:
        text = self._plan.subject or ""
        if self._plan.subject_jinja:
            text = personalize.jinja(text, values.variables, html=False)
        if not (self._plan.subject_jinja and self.sub.syntax == "postroom"):
            text = self.sub.apply(text, values, html=False)
        return text

    def _part_text(self, i: int, values: Values, track: bool) -> str:
        part = self._plan.parts[i]
        text = part.source
        if part.jinja:
            text = personalize.jinja(text, values.variables, html=part.html)
        if not (part.jinja and self.sub.syntax == "postroom"):  # Jinja runs once, never twice
            text = self.sub.apply(text, values, html=part.html)
        t, links = self.tracking, self.links
        if not track or links is None or not values.address:
            return text
        click = self._clicker(links, values.address)
        if part.html and (t.opens or t.clicks):
            pixel = links.open_url(self.message_id, values.address) \
                if i == self._plan.pixel else None
            text = rewrite_html(text, click if t.clicks else None, pixel)
        elif not part.html and t.text_clicks:
            text = rewrite_text(text, click)
        return text

    def _clicker(self, links: Links, address: str) -> Callable[[str], str]:
        def click(url: str) -> str:
            if links.owns(url):  # our own links (unsubscribe) stay as they are
                return url
            return links.click_url(self.message_id, address, url)

        return click


# --- MIME helpers ------------------------------------------------------------------------------
def _leaves(part: EmailMessage) -> Iterator[EmailMessage]:
    """The non-multipart parts, in order. An attached message (message/*) is one leaf: what it
    holds is someone else's mail, never walked into, tracked or personalized."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.iter_parts():
            yield from _leaves(sub)  # type: ignore[arg-type]
    else:
        yield part


def _is_body_text(part: EmailMessage) -> bool:
    """A text part read as the message itself. An attachment, or a file shown inline (it has a
    filename), is sent as it came."""
    return (part.get_content_type() in _BODY_TYPES
            and part.get_content_disposition() != "attachment"
            and part.get_filename() is None)


def _text_of(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset: the bytes as Latin-1
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def _set_header(msg: EmailMessage, name: str, value: str) -> None:
    if name in msg:
        msg.replace_header(name, value)
    else:
        msg[name] = value


def _make_slot(msg: EmailMessage, part: EmailMessage, cte: str, body: str) -> None:
    """The part's body becomes a marker, sent as UTF-8 with a transfer encoding per copy."""
    params = [(k, v) for k, v in part.get_params(failobj=[])[1:] if k.lower() != "charset"]
    subtype = part.get_content_subtype()
    del part["Content-Type"]
    del part["Content-Transfer-Encoding"]
    part["Content-Type"] = f"text/{subtype}"
    part.set_param("charset", "utf-8")
    for key, value in params:
        part.set_param(key, value)
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(body)
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"


def _apply_template(msg: EmailMessage, t: Template) -> None:
    """The template's subject and parts replace the message's. Everything else is kept:
    attachments and other parts, and inline images (`cid:`), which stay next to the HTML."""
    own = str(msg.get("Subject", ""))
    if "<%subject%>" in t.subject:
        _set_header(msg, "Subject", t.subject.replace("<%subject%>", own))
    elif t.subject and not own.strip():
        _set_header(msg, "Subject", t.subject)
    if not (t.html or t.text):
        return
    own_html = own_text = None
    inline: list[EmailMessage] = []
    kept: list[EmailMessage] = []
    for p in _leaves(msg):
        if _is_body_text(p):
            if p.get_content_type() == "text/html" and own_html is None:
                own_html = _text_of(p)
            elif p.get_content_type() == "text/plain" and own_text is None:
                own_text = _text_of(p)
        elif "Content-ID" in p and p.get_content_disposition() != "attachment":
            inline.append(p)
        else:
            kept.append(p)
    html = t.html.replace("<%body%>", own_html if own_html is not None
                          else escape(own_text or "").replace("\n", "<br>\n"))
    text = t.text.replace("<%body%>", own_text or "")
    _set_body(msg, text, html, inline)
    if not html:  # no HTML to show them in: sent as parts of their own
        kept = inline + kept
    if kept:
        msg.make_mixed()  # once: a second call raised "Cannot convert mixed to mixed"
        for p in kept:
            msg.attach(p)


def _set_body(msg: EmailMessage, text: str, html: str, inline: Sequence[EmailMessage]) -> None:
    """The message's content becomes text and/or HTML; the HTML with its inline parts in a
    multipart/related."""
    msg.clear_content()
    if html and text:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[-1]
    elif html:
        msg.set_content(html, subtype="html")
        html_part = msg
    else:
        msg.set_content(text)
        return
    if inline:
        html_part.make_related()
        for p in inline:
            html_part.attach(p)
