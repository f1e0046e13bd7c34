"""Per-recipient substitution, in each dialect's own placeholder syntax (pure).

One `Substitution` describes a message's variables; `values(address)` gathers what one
recipient's copy is rendered with, and `apply(text, values, html=)` fills the placeholders of one
text (a Subject, a text/plain or a text/html part):

- `postroom`: `{{ x }}` (Jinja2's sandbox), the recipient's variables over the global ones.
- `zoho`: `$[x]$` and `$[x|Default]$`, from `merge_data`, then `additional_data`, then the
  global variables; a missing one renders as its default.
- `mailgun`: `%recipient.x%` (`%recipient.a.b%` walks into objects) from the recipient's
  variables, then the global ones; `%recipient%` is the recipient's address.
- `sendgrid`: each `sub` key, literally, replaced by the recipient's value (by address when
  `to` named it, else by its position), and each `section` key by that section, whose own sub
  keys are filled in too; a `sub` value that is a section key brings that section.

Inside HTML every value is HTML-escaped; the template's own text (a Zoho default, a SendGrid
section) is not, as it is part of the author's markup. No placeholder syntax executes code: the
three literal syntaxes are regular expressions over plain lookups, and `{{ x }}` runs in Jinja2's
sandbox. A missing variable renders as an empty string (Zoho: as its default).
"""

from __future__ import annotations

import html as html_lib
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from postroom.render import merge

log = logging.getLogger("postroom.render")

__all__ = ["SYNTAXES", "Substitution", "Values", "header_safe", "stringify"]

SYNTAXES = ("postroom", "zoho", "mailgun", "sendgrid")
_ZOHO = re.compile(r"\$\[\s*([^\]|$\r\n]{1,200}?)\s*(?:\|([^\]\r\n]{0,1000}))?\]\$")
_MAILGUN = re.compile(r"%recipient(?:\.([A-Za-z0-9_\-]{1,100}(?:\.[A-Za-z0-9_\-]{1,100}){0,5}))?%")
_BUILTIN_MAILGUN = ("%unsubscribe_url%",)


def stringify(value: Any) -> str:
    """A variable as text: strings as they are, numbers as written, anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def header_safe(text: str) -> str:
    """No line breaks or other control characters in a header value (no header injection)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]+", " ", text) if not text.isprintable() else text


@dataclass(frozen=True, slots=True)
class Values:
    """What one recipient's copy is rendered with."""

    address: str = ""
    variables: Mapping[str, Any] = field(default_factory=dict)  # recipient's over global ones
    fields: Mapping[str, Any] = field(default_factory=dict)  # Zoho additional_data
    sub: Mapping[str, str] = field(default_factory=dict)  # SendGrid: key → this recipient's value


@dataclass(frozen=True, slots=True)
class Substitution:
    """A message's variables and placeholder syntax. Mappings are shared, never copied."""

    syntax: str = "postroom"
    global_vars: Mapping[str, Any] = field(default_factory=dict)
    recipient_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # lowercased
    recipient_fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sendgrid_sub: Mapping[str, Sequence[str]] = field(default_factory=dict)  # one per position
    sendgrid_sections: Mapping[str, str] = field(default_factory=dict)
    chosen: bool = False  # a dialect named the syntax (without variables, `{{ }}` is text)
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _keys: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.syntax not in SYNTAXES:
            raise ValueError(f"unknown substitution syntax {self.syntax!r}")
        if self.syntax == "sendgrid":  # longest key first: "-name-x-" before "-name-"
            keys = sorted({*self.sendgrid_sub, *self.sendgrid_sections} - {""}, key=len,
                          reverse=True)
            object.__setattr__(self, "_keys", tuple(keys))
            if keys:
                object.__setattr__(self, "_pattern", re.compile("|".join(map(re.escape, keys))))

    @property
    def active(self) -> bool:
        """Placeholders are filled at all: a dialect chose a syntax or gave variables. Mail
        without them may say `{{ order }}` as text; tracking must not turn that into Jinja."""
        return (self.chosen or self.syntax != "postroom" or bool(self.global_vars)
                or self.per_recipient)

    @property
    def per_recipient(self) -> bool:
        """Copies differ by recipient (batch sending): some recipient has data of its own."""
        return bool(self.recipient_vars or self.recipient_fields or self.sendgrid_sub)

    def values(self, address: str = "", position: int | None = None,
               extra: Mapping[str, Any] | None = None) -> Values:
        """One recipient's values; `position` is its index in SendGrid's `sub` lists, used when
        the recipient has no variables of its own; `extra` are built-ins (lowest precedence)."""
        key = address.lower()
        own = self.recipient_vars.get(key)
        variables: Mapping[str, Any]
        if extra or (own and self.global_vars):
            variables = {**(extra or {}), **self.global_vars, **(own or {})}
        else:
            variables = own or self.global_vars
        sub: Mapping[str, str] = {}
        if self.syntax == "sendgrid":
            if own:
                sub = {k: stringify(v) for k, v in own.items() if k in self.sendgrid_sub}
            elif position is not None:
                sub = {k: vs[position] for k, vs in self.sendgrid_sub.items() if position < len(vs)}
        return Values(address, variables, self.recipient_fields.get(key, {}), sub)

    # --- what a text needs -------------------------------------------------------------------
    def has_placeholders(self, text: str) -> bool:
        if self.syntax == "postroom":
            return ("{{" in text or "{%" in text) and self.active
        if self.syntax == "zoho":
            return "$[" in text and _ZOHO.search(text) is not None
        if self.syntax == "mailgun":
            return "%recipient" in text or any(b in text for b in _BUILTIN_MAILGUN)
        return any(k in text for k in self._keys)

    def uses_address(self, text: str) -> bool:
        """The text names the recipient itself (Mailgun's `%recipient%`)."""
        return self.syntax == "mailgun" and "%recipient%" in text

    # --- substitution ------------------------------------------------------------------------
    def apply(self, text: str, values: Values, *, html: bool) -> str:
        if self.syntax == "postroom":
            return jinja(text, values.variables, html=html) if self.active else text
        if self.syntax == "zoho":
            return self._zoho(text, values, html)
        if self.syntax == "mailgun":
            return self._mailgun(text, values, html)
        return self._sendgrid(text, values, html)

    def _zoho(self, text: str, values: Values, html: bool) -> str:
        if "$[" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            found = _lookup(name, values.variables, values.fields)
            if found is None:
                return default if default is not None else ""
            return _escape(stringify(found), html)

        return _ZOHO.sub(repl, text)

    def _mailgun(self, text: str, values: Values, html: bool) -> str:
        if "%" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            path = m.group(1)
            if path is None:
                return _escape(values.address, html)
            found: Any = values.variables
            for step in path.split("."):
                found = found.get(step) if isinstance(found, Mapping) else None
            return _escape(stringify(found), html)

        text = _MAILGUN.sub(repl, text)
        if "%unsubscribe_url%" in text:
            url = stringify(values.variables.get("unsubscribe_url", ""))
            text = text.replace("%unsubscribe_url%", _escape(url, html))
        return text

    def _sendgrid(self, text: str, values: Values, html: bool) -> str:
        pattern = self._pattern
        if pattern is None or not any(k in text for k in self._keys):
            return text
        sections = self.sendgrid_sections

        def subs_only(section: str) -> str:  # a section may hold sub keys, not sections
            return pattern.sub(lambda m: value_of(m.group(0), inner=True), section)

        def value_of(key: str, inner: bool = False) -> str:
            if key in self.sendgrid_sub:
                value = values.sub.get(key, "")
                if value in sections and not inner:
                    return subs_only(sections[value])  # a sub value may name a section
                return _escape(value, html)
            if key in sections:
                return key if inner else subs_only(sections[key])
            return key

        return pattern.sub(lambda m: value_of(m.group(0)), text)


#: Texts whose render ran out of work or room (by hash; bounded): a message with 10,000
#: recipients and such a template would otherwise spend the whole budget 10,000 times over,
#: holding the render threads of every other sender's mail meanwhile.
_TOO_COSTLY: dict[int, None] = {}
_TOO_COSTLY_MAX = 1024
_TOO_COSTLY_LOCK = threading.Lock()


def jinja(text: str, variables: Mapping[str, Any], *, html: bool) -> str:
    """`{{ x }}` in Jinja2's sandbox; a missing variable is empty. A template that does not
    compile is left as written (logged): a copy is never lost to a typo. One that ran out of
    its work budget is not rendered again (left as written) for the next recipients."""
    key = hash((text, html))
    if key in _TOO_COSTLY:
        return text
    try:
        return merge.render(text, dict(variables), html=html, missing="empty")
    except merge.TooCostly as exc:
        with _TOO_COSTLY_LOCK:  # render threads share it
            if len(_TOO_COSTLY) >= _TOO_COSTLY_MAX:
                _TOO_COSTLY.pop(next(iter(_TOO_COSTLY)))
            _TOO_COSTLY[key] = None
        log.warning("placeholders left as written, and for the next copies too: %s", exc)
        return text
    except merge.MergeError as exc:
        log.warning("placeholders left as written: %s", exc)
        return text


def _lookup(name: str, *sources: Mapping[str, Any]) -> Any:
    for source in sources:
        if name in source:
            return source[name]
    folded = name.lower()
    for source in sources:
        for key, value in source.items():
            if key.lower() == folded:
                return value
    return None


def _escape(value: str, html: bool) -> str:
    return html_lib.escape(value, quote=True) if html else value
