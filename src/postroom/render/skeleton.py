"""A message's skeleton: everything its copies share, done once per message (pure).

`build` parses nothing itself: it takes the parsed message, applies the template, the file-cache
attachments and the From override, decides what differs per recipient (placeholders, tracking
links and pixel, the To header of a batch), and flattens the message with a marker in place of
each of those. The flat bytes, cut at the markers, are the skeleton `Copies` fills per copy.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from postroom.model.records import Template
from postroom.render import attachments, mime
from postroom.render.addresses import mailbox
from postroom.render.attachments import File
from postroom.render.html import has_link
from postroom.render.personalize import Substitution, header_safe

__all__ = ["Part", "Plan", "Skeleton", "Tracking", "build"]

_URL_IN_TEXT = re.compile(r"https?://")


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


@dataclass(slots=True)
class Part:
    html: bool
    source: str
    jinja: bool  # a template's part: Jinja2 first, then the message's own syntax
    tracked: bool = False  # the pixel or tracked links go in
    dynamic: bool = False  # differs from the source: tracked or has placeholders


@dataclass(slots=True)
class Plan:
    subject: str | None = None  # the Subject source when it has placeholders
    subject_jinja: bool = False
    to: bool = False  # the To header names the recipient (batch sending)
    parts: list[Part] = field(default_factory=list)
    pixel: int | None = None  # the part that gets the open pixel (the first HTML part)


@dataclass(slots=True)
class Skeleton:
    plan: Plan
    # The flat message cut at the markers: bytes, or (kind, part index) to fill per copy:
    # S(ubject), T(o), C(ontent-Transfer-Encoding of part i), B(ody of part i).
    segments: list[bytes | tuple[str, int]]
    unchanged: bool  # no step changed the message: the stored bytes are every copy
    per_recipient: bool  # copies differ by recipient (beyond List-Unsubscribe)
    own_unsubscribe: bool  # the message has its own List-Unsubscribe


def has_placeholders(sub: Substitution, text: str, jinja: bool) -> bool:
    return (jinja and ("{{" in text or "{%" in text)) or sub.has_placeholders(text)


def build(msg: EmailMessage, sub: Substitution, t: Tracking, template: Template | None,
          files: Sequence[File], sender: tuple[str, str | None] | None) -> Skeleton:
    """The skeleton of `msg` (parsed; edited in place)."""
    changed = bool(template or files or sender)
    plan = Plan()
    if template is not None:
        mime.apply_template(msg, template)
    subject = str(msg.get("Subject", ""))
    leaves = [p for p in mime.leaves(msg) if mime.is_body_text(p)]
    jinja = template is not None
    plan.parts = [Part(p.get_content_type() == "text/html", mime.text_of(p), jinja)
                  for p in leaves]
    batch = sub.per_recipient
    for part in plan.parts:
        part.tracked = bool(
            (part.html and (t.opens or (t.clicks and has_link(part.source))))
            or (not part.html and t.text_clicks and _URL_IN_TEXT.search(part.source)))
        part.dynamic = part.tracked or has_placeholders(sub, part.source, jinja)
    plan.pixel = next((i for i, p in enumerate(plan.parts) if p.html and t.opens), None)
    subject_dynamic = has_placeholders(sub, subject, jinja)
    own_unsubscribe = "List-Unsubscribe" in msg
    texts = (subject, *(p.source for p in plan.parts))
    per_recipient = (
        batch or (t.unsubscribe and not own_unsubscribe)
        or any(p.tracked for p in plan.parts) or any(map(sub.uses_address, texts)))
    nonce = secrets.token_hex(8)

    def marker(kind: str, i: int) -> str:
        return f"PRSLOT{nonce}{kind}{i}E"

    if subject_dynamic:
        plan.subject, plan.subject_jinja = subject, jinja
        mime.set_header(msg, "Subject", marker("S", 0))
    if batch:
        plan.to = True
        mime.set_header(msg, "To", marker("T", 0))
    for i, (leaf, part) in enumerate(zip(leaves, plan.parts, strict=True)):
        if part.dynamic:  # re-encoded to UTF-8 in every copy
            if part.html:
                part.source = mime.sent_as_utf8(leaf, part.source)
            mime.make_slot(msg, leaf, marker("C", i), marker("B", i))
    utf8_from = None
    if sender is not None:  # a UTF-8 address goes in after flattening, as it is
        written = mailbox(header_safe(sender[1] or ""), sender[0])
        utf8_from = None if written.isascii() else written
        mime.set_header(msg, "From", marker("F", 0) if utf8_from else written)
    attachments.add(msg, files)
    if not (changed or subject_dynamic or batch or any(p.dynamic for p in plan.parts)):
        # at most List-Unsubscribe differs: it goes in front
        return Skeleton(plan, [], True, per_recipient, own_unsubscribe)
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
    return Skeleton(plan, segments, False, per_recipient, own_unsubscribe)
