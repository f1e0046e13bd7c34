"""Open and click tracking, and unsubscribe links, for one recipient's copy (pure).

Every URL carries a signed token naming (message, recipient[, link]); the HTTP endpoints verify
it and answer 404 to anything tampered, so a tracking link can never be turned into an open
redirect. Rewriting works on the MIME tree with the `email` package, so charsets and transfer
encodings stay correct: parts are re-encoded, never patched as bytes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from html import unescape
from urllib.parse import urlsplit

from postroom.render import tokens
from postroom.render.html import declare_utf8, has_link, rewrite_links

__all__ = ["CLICK", "OPEN", "UNSUBSCRIBE", "Links", "apply", "has_link", "rewrite_html",
           "rewrite_text"]

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
_TEXT_URL = re.compile(r"""https?://[^\s<>"')\]]+""")
_TRAILING = ".,;:!?'"  # sentence punctuation after a URL in text is not part of it
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_HTML_END = re.compile(r"</html\s*>", re.IGNORECASE)
_PORTS = {"http": 80, "https": 443}


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

    def owns(self, url: str) -> bool:
        """`url` is under `base_url` (same scheme, host and port; its path below the base's):
        a string prefix took https://t.example.org/… for https://t.example's."""
        return _under(_origin_path(url), _base(self.base_url))


@functools.lru_cache(maxsize=16)
def _base(base_url: str) -> tuple[str, str, int | None, str] | None:
    """`_origin_path` of a base URL, parsed once (it is asked about every link)."""
    return _origin_path(base_url)


def _origin_path(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or _PORTS.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        return None
    return parts.scheme.lower(), (parts.hostname or ""), port, parts.path


def _under(url: tuple[str, str, int | None, str] | None,
           base: tuple[str, str, int | None, str] | None) -> bool:
    if url is None or base is None or url[:3] != base[:3]:
        return False
    root = base[3].rstrip("/")
    return url[3] == root or url[3].startswith(root + "/")


def rewrite_html(html: str, click: object | None, pixel: str | None) -> str:
    """Send the http(s) links of <a> and <area> tags through `click(url)`; add the 1×1 pixel
    at the end of the body (before </body>, else before </html>, else at the end)."""
    if click is not None:
        def repl(value: str) -> str | None:
            url = unescape(value)  # the attribute's text: &amp;, &#38; ... are one "&"
            new = click(url)  # type: ignore[operator]
            return None if new == url else new  # None: left alone, as written

        html = rewrite_links(html, repl)
    if pixel is not None:
        img = (f'<img src="{pixel}" width="1" height="1" alt="" '
               'style="display:block;border:0;width:1px;height:1px">')
        at = _last(_BODY_END, html)
        if at is None:
            at = _last(_HTML_END, html)
        html = html + img if at is None else html[:at] + img + html[at:]
    return html


def _last(pattern: re.Pattern[str], text: str) -> int | None:
    found = list(pattern.finditer(text))
    return found[-1].start() if found else None


def rewrite_text(text: str, click: object) -> str:
    """Send the URLs of a text part through `click(url)`; punctuation ending a sentence after
    a URL stays outside it."""
    def repl(m: re.Match[str]) -> str:
        url = m.group(0).rstrip(_TRAILING)
        return click(url) + m.group(0)[len(url):]  # type: ignore[operator, no-any-return]

    return _TEXT_URL.sub(repl, text)


def apply(raw: bytes, *, links: Links, message_id: str, recipient: str, opens: bool,
          clicks: bool, text_clicks: bool = False, keep: tuple[str, ...] = ()) -> bytes:
    """Return `raw` with tracking applied to its text/html (and, if asked, text/plain) parts.
    URLs starting with any prefix in `keep` (e.g. our own unsubscribe link) are left alone."""
    if not (opens or clicks):
        return raw
    msg = message_from_bytes(raw, _class=EmailMessage, policy=SMTP)

    def click(url: str) -> str:
        if url.startswith(keep) or links.owns(url):
            return url
        return links.click_url(message_id, recipient, url)

    pixel = links.open_url(message_id, recipient) if opens else None
    changed = False
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment" \
                or part.get_filename() is not None:
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
        if subtype == "html":  # re-encoded: its <meta> must not name the old charset
            text = declare_utf8(text)
    for k in list(part.keys()):
        del part[k]
    part.set_content(text, subtype=subtype, charset=charset)
    for k, v in keep:
        if k not in part:
            part[k] = v
