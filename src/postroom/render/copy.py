"""The copy each recipient gets, from one stored message (pure: delivery loads what it needs).

The pipeline, in order: template (its subject, HTML and text replace the body; `<%subject%>` and
`<%body%>` bring the message's own) → personalization (`render.personalize`, in the message's
syntax) → file-cache attachments → From override → open and click tracking → List-Unsubscribe.

`Copies(raw, ...)` parses the message once and does every step that is the same for all
recipients (`render.skeleton`). What differs per recipient (placeholders, tracking links and
pixel, the To header of a batch, List-Unsubscribe) becomes a slot in a flattened skeleton, so
`render(recipient)` is string work and one re-encoding per text part, never a MIME parse. A
personalized text part is sent as UTF-8 (`render.encode`: 7bit when it stays ASCII with short
lines, quoted-printable otherwise; an HTML part's `<meta>` charset then says utf-8); a
personalized Subject or To is RFC 2047-encoded when it needs to be. Values never carry line
breaks into a header.

When no copy depends on its recipient (`per_recipient` is false), `shared()` is the one copy for
everyone: the stored bytes themselves when no step changed anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage

from postroom.model.records import Template
from postroom.render import personalize, skeleton, unsubscribe
from postroom.render.addresses import mailbox
from postroom.render.attachments import POLICY, File
from postroom.render.encode import encode_body, fold
from postroom.render.personalize import Substitution, Values, header_safe
from postroom.render.skeleton import Plan, Tracking
from postroom.render.tracking import Links, rewrite_html, rewrite_text

__all__ = ["Copies", "Recipient", "Tracking", "encode_body", "needs_parsing"]


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    position: int | None = None  # index into SendGrid's `sub` lists (no `to` named it)
    mailto: str | None = None  # List-Unsubscribe mailto target for this recipient


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
        self._plan = Plan()
        self._own_unsubscribe = False
        self.per_recipient = False
        self.error: Exception | None = None  # set by `unrenderable`
        self._shared: bytes | None = None
        if not needs_parsing(self.sub, self.tracking, template, files, sender):
            self._shared = raw  # nothing to do: the stored bytes, untouched
            return
        msg = message_from_bytes(raw, _class=EmailMessage, policy=POLICY)
        made = skeleton.build(msg, self.sub, self.tracking, template, files, sender)
        self._plan, self._segments = made.plan, made.segments
        self._own_unsubscribe, self.per_recipient = made.own_unsubscribe, made.per_recipient
        if made.unchanged:
            self._shared = raw  # at most List-Unsubscribe differs: it goes in front

    @classmethod
    def unrenderable(cls, error: Exception, *, message_id: str, account_id: str) -> Copies:
        """Stands in for a message that could not be prepared: each copy raises `error`, so
        delivery defers this message's recipients and no other message's."""
        copies = cls(b"", message_id=message_id, account_id=account_id)
        copies.error, copies.per_recipient = error, True
        return copies

    @property
    def size(self) -> int:
        """Bytes held (the stored message, or the skeleton copies are made from)."""
        return sum(len(s) for s in self._segments if isinstance(s, bytes)) + len(self._raw)

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
                out.append(fold("Subject", self._subject(values)))
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
        return fold("To", value) if value.isascii() else value.encode("utf-8")

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
