"""The MIME edits a copy's skeleton is made with, on the parsed message (pure): which parts are
the message's text, a part turned into a slot for per-copy text, a template put in place of the
body."""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from html import escape

from postroom.model.records import Template
from postroom.render.html import declare_utf8

_BODY_TYPES = ("text/plain", "text/html")


def leaves(part: EmailMessage) -> Iterator[EmailMessage]:
    """The non-multipart parts, in order. An attached message (message/*) is one leaf: what it
    holds is someone else's mail, never walked into, tracked or personalized."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.iter_parts():
            yield from leaves(sub)  # type: ignore[arg-type]
    else:
        yield part


def is_body_text(part: EmailMessage) -> bool:
    """A text part read as the message itself. An attachment, or a file shown inline (it has a
    filename), is sent as it came."""
    return (part.get_content_type() in _BODY_TYPES
            and part.get_content_disposition() != "attachment"
            and part.get_filename() is None)


def text_of(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset: the bytes as Latin-1
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def sent_as_utf8(part: EmailMessage, text: str) -> str:
    """The text of HTML part `part` as it must read once sent as UTF-8: when the part came in
    another charset (none is US-ASCII), its `<meta>` declarations name UTF-8 instead."""
    charset = part.get_content_charset() or "us-ascii"
    try:
        utf8 = codecs.lookup(charset).name == "utf-8"
    except LookupError:
        utf8 = False
    return text if utf8 else declare_utf8(text)


def set_header(msg: EmailMessage, name: str, value: str) -> None:
    if name in msg:
        msg.replace_header(name, value)
    else:
        msg[name] = value


def make_slot(msg: EmailMessage, part: EmailMessage, cte: str, body: str) -> None:
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


def apply_template(msg: EmailMessage, t: Template) -> None:
    """The template's subject and parts replace the message's. Everything else is kept:
    attachments and other parts, and inline images (`cid:`), which stay next to the HTML."""
    own = str(msg.get("Subject", ""))
    if "<%subject%>" in t.subject:
        set_header(msg, "Subject", t.subject.replace("<%subject%>", own))
    elif t.subject and not own.strip():
        set_header(msg, "Subject", t.subject)
    if not (t.html or t.text):
        return
    own_html = own_text = None
    inline: list[EmailMessage] = []
    kept: list[EmailMessage] = []
    for p in leaves(msg):
        if is_body_text(p):
            if p.get_content_type() == "text/html" and own_html is None:
                own_html = sent_as_utf8(p, text_of(p))  # into the template's UTF-8 part
            elif p.get_content_type() == "text/plain" and own_text is None:
                own_text = text_of(p)
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
