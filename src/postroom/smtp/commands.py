"""SMTP command lines → values (RFC 5321 §4.1, RFC 1869 parameters, RFC 6531 SMTPUTF8).

Grammar fragments are regexes written from the RFC's ABNF, quoted beside each. Parsing is strict
where it protects recipients (address syntax, parameter values) and lenient where real clients
deviate harmlessly (a space after `MAIL FROM:`, a path without angle brackets, lower-case verbs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" / "=" / "?" /
#         "^" / "_" / "`" / "{" / "|" / "}" / "~"  (RFC 5322; RFC 6531 adds UTF8-non-ascii)
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
# Dot-string = Atom *("."  Atom)
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# Quoted-string = DQUOTE *QcontentSMTP DQUOTE ; qtextSMTP = %d32-33 / %d35-91 / %d93-126
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"'
# sub-domain = Let-dig [Ldh-str] ; a U-label is allowed with SMTPUTF8
_LABEL = r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]{0,61}[A-Za-z0-9\u0080-\U0010ffff])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
# address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
_LITERAL = r"\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]"
MAILBOX_RE = re.compile(rf"^(?:{_DOT_STRING}|{_QUOTED})@(?:{_DOMAIN}|{_LITERAL})$")

# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") ; esmtp-value = 1*(%d33-60 / %d62-126)
_PARAM_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9\-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?$")
_DOMAIN_ARG_RE = re.compile(rf"^(?:{_DOMAIN}|{_LABEL}|{_LITERAL})$")


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed MAIL FROM / RCPT TO argument."""

    address: str  # "" for the null reverse-path <>
    params: dict[str, str | None] = field(default_factory=dict)


class PathError(ValueError):
    """The argument is not a usable path; `kind` is "syntax", "address" or "param"."""

    def __init__(self, kind: str, address: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.address = address


def split_command(line: str) -> tuple[str, str]:
    """Return (VERB, argument) with the verb upper-cased. `MAIL FROM:x` → ("MAIL", "FROM:x")."""
    verb, _, arg = line.strip(" ").partition(" ")
    return verb.upper(), arg.strip(" ")


def is_valid_mailbox(address: str) -> bool:
    if len(address) > 254 or "@" not in address:
        return False
    local, _, domain = address.rpartition("@")
    if len(local) > 128 or len(domain) > 253:  # RFC 5321 says 64, but be liberal (VERP)
        return False
    return MAILBOX_RE.match(address) is not None


def is_valid_helo_name(name: str) -> bool:
    return bool(name) and len(name) <= 255 and _DOMAIN_ARG_RE.match(name) is not None


def parse_path(arg: str, keyword: str, *, allow_null: bool) -> Path:
    """Parse `FROM:<a@b> SIZE=10` (keyword "FROM") or `TO:<a@b>` (keyword "TO").

    RFC 5321 §4.1.1.3 and §4.5.1: `RCPT TO:<Postmaster>` (any case, no domain) MUST be accepted;
    it is the one path without a domain, kept as the client spelled it for the policy to answer.
    """
    head, sep, rest = arg.partition(":")
    if not sep or head.strip().upper() != keyword:
        raise PathError("syntax")
    rest = rest.lstrip(" ")
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            raise PathError("syntax")
        address, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(" "):
            raise PathError("syntax")
    else:
        address, _, tail = rest.partition(" ")
    # A source route (<@a,@b:user@c>) is obsolete; RFC 5321 §4.1.2 says to accept and ignore it.
    routed = address.startswith("@") and ":" in address
    if routed:
        address = address.split(":", 1)[1]
    params: dict[str, str | None] = {}
    for token in tail.split():
        m = _PARAM_RE.match(token)
        if m is None:
            raise PathError("param", address)
        params[m.group(1).upper()] = m.group(2)
    if address == "":
        if not allow_null:
            raise PathError("address", address)
        return Path("", params)
    if not is_valid_mailbox(address):
        if keyword == "TO" and not routed and address.lower() == "postmaster":
            return Path(address, params)
        raise PathError("address", address)
    return Path(address, params)


def needs_smtputf8(address: str) -> bool:
    return not address.isascii()
