"""Open and click tracking, and unsubscribe links, for one recipient's copy (pure).

Every URL carries a signed token naming (message, recipient[, link]); the HTTP endpoints verify
it and answer 404 to anything tampered, so a tracking link can never be turned into an open
redirect. Rewriting works on the MIME tree with the `email` package, so charsets and transfer
encodings stay correct: parts are re-encoded, never patched as bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

from postroom.render import tokens

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_TEXT_URL = re.compile(r"""https?://[^\s<>"')\]]+""")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Links:
    """Builds signed tracking URLs under `base_url` (e.g. https://track.example.com)."""

    base_url: str
    secret: bytes

    def open_url(self, message_id: str, recipient: str) -> str:
        t = tokens.sign(self.secret, OPEN, {"m": message_id, "r": recipient})
        return f"{self.base_url}/t/o/{t}"

    def click_url(self, message_id: str, recipient: str, url: str) -> str:
        t = tokens.sign(self.secret, CLICK, {"m": message_id, "r": recipient, "u": url})
        return f"{self.base_url}/t/c/{t}"

    def unsubscribe_url(self, account_id: str, message_id: str, recipient: str) -> str:
        t = tokens.sign(self.secret, UNSUBSCRIBE, {"a": account_id, "m": message_id,
                                                  "r": recipient})
        return f"{self.base_url}/u/{t}"


def rewrite_html(html: str, click: object | None, pixel: str | None) -> str:
    """Send http(s) links through `click(url)`; add the 1×1 pixel at the end of the body."""
    if click is not None:
        def repl(m: re.Match[str]) -> str:
            url = m.group(3).replace("&amp;", "&")
            return f"{m.group(1)}{m.group(2)}{click(url)}{m.group(2)}"  # type: ignore[operator]

        html = _HREF.sub(repl, html)
    if pixel is not None:
        img = (f'<img src="{pixel}" width="1" height="1" alt="" '
               'style="display:block;border:0;width:1px;height:1px">')
        found = list(_BODY_END.finditer(html))
        html = html[: found[-1].start()] + img + html[found[-1].start():] if found else html + img
    return html


def rewrite_text(text: str, click: object) -> str:
    return _TEXT_URL.sub(lambda m: click(m.group(0)), text)  # type: ignore[operator]


def apply(raw: bytes, *, links: Links, message_id: str, recipient: str, opens: bool,
          clicks: bool, text_clicks: bool = False, keep: tuple[str, ...] = ()) -> bytes:
    """Return `raw` with tracking applied to its text/html (and, if asked, text/plain) parts.
    URLs starting with any prefix in `keep` (e.g. our own unsubscribe link) are left alone."""
    if not (opens or clicks):
        return raw
    msg = message_from_bytes(raw, _class=EmailMessage, policy=SMTP)

    def click(url: str) -> str:
        if url.startswith(keep) or url.startswith(links.base_url):
            return url
        return links.click_url(message_id, recipient, url)

    pixel = links.open_url(message_id, recipient) if opens else None
    changed = False
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            new = rewrite_html(part.get_content(), click if clicks else None, pixel)
            pixel = None  # one pixel per message, in the first HTML part
        elif ctype == "text/plain" and clicks and text_clicks:
            new = rewrite_text(part.get_content(), click)
        else:
            continue
        charset = part.get_content_charset() or "utf-8"
        subtype = ctype.split("/")[1]
        _replace_text(part, new, subtype, charset)
        changed = True
    return msg.as_bytes() if changed else raw


def _replace_text(part: EmailMessage, text: str, subtype: str, charset: str) -> None:
    """Set new text, keeping the part's other headers (Content-ID, disposition…)."""
    keep = [(k, v) for k, v in part.items()
            if k.lower() not in ("content-type", "content-transfer-encoding", "mime-version")]
    try:
        text.encode(charset)
    except (LookupError, UnicodeEncodeError):
        charset = "utf-8"
    for k in list(part.keys()):
        del part[k]
    part.set_content(text, subtype=subtype, charset=charset)
    for k, v in keep:
        if k not in part:
            part[k] = v
