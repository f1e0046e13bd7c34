"""The kinds of value control headers carry, one parser each, shared by every dialect.

Every parser takes the header name as the client wrote it and refuses with a `DialectError` whose
problem is short and user-facing: the SMTP server answers `550 5.6.0 <header>: <problem>`. Limits
are at least each vendor's own, but bounded: headers are parsed before the 250, so a hostile one
must cost little.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import idna  # what httpx encodes host names with: a name it refuses must be refused here

from postroom.dialects.options import FileRef

MAX_VALUE = 16 << 20  # one header value, in characters (10,000 recipients of merge data fit)
MAX_TEXT = 1000  # ids, names, references
MAX_URL = 2000  # what the store keeps of a URL a POST goes to
MAX_HOST = 253  # a DNS name's limit (the store's endpoint column is scheme://host:port)
MAX_TAG = 1000  # Postmark's limit, the largest of the vendors'
MAX_TAGS = 50
MAX_METADATA = 200
MAX_METADATA_VALUE = 10_000
MAX_RECIPIENTS = 10_000  # Zoho's per-message limit, the largest of the vendors'
MAX_FILES = 50


class DialectError(ValueError):
    """A malformed control header: `header` as the client wrote it, `problem` for the reply."""

    def __init__(self, header: str, problem: str) -> None:
        problem = re.sub(r"[\x00-\x1f\x7f]", "?", problem)  # never a line break in a reply
        super().__init__(f"{header}: {problem}")
        self.header = header
        self.problem = problem


def show(value: str) -> str:
    """A value quoted for an error message: short, escaped, ASCII."""
    return json.dumps(value if len(value) <= 40 else value[:37] + "...")


def text(header: str, value: Any, limit: int = MAX_TEXT, what: str = "value") -> str:
    """One line of text; JSON numbers are accepted and kept as written."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise DialectError(header, f"{what} must be a string")
    value = value.strip()
    if len(value) > limit:
        raise DialectError(header, f"{what} is longer than {limit} characters")
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
        raise DialectError(header, f"{what} contains control characters")
    return value


def boolean(header: str, value: str) -> bool:
    word = value.strip().lower()
    if word in ("true", "yes", "1", "on"):
        return True
    if word in ("false", "no", "0", "off"):
        return False
    raise DialectError(header, f"expected yes or no, not {show(value)}")


def moment(header: str, value: Any, what: str = "date") -> datetime:
    """A UNIX timestamp, an RFC 5322 date or ISO 8601; without a zone, UTC. Returned in UTC."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            value = value.strip()
            if value.isdigit():
                return datetime.fromtimestamp(int(value), UTC)
            if re.match(r"\d{4}-\d\d-\d\d", value):
                when = datetime.fromisoformat(value)
            else:
                when = email.utils.parsedate_to_datetime(value)
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError, OSError, TypeError, IndexError):
        pass
    shown = show(value) if isinstance(value, str) else "a non-date"
    raise DialectError(header, f"{what} {shown} is not a date (RFC 5322, ISO 8601 or UNIX time)")


def url(header: str, value: str) -> str:
    value = text(header, value, MAX_URL)
    problem = http_url_problem(value)
    if problem:
        raise DialectError(header, f"{show(value)} is not an http(s) URL: {problem}")
    return value


_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_BAD_PORT = "the port must be a number from 1 to 65535"


def http_url_problem(value: str) -> str | None:
    """Why Postroom cannot POST to `value` (None when it can): http(s), a host that is an IP
    literal or a valid DNS/IDNA name of at most MAX_HOST characters, a port of 1-65535, at most
    MAX_URL characters, no whitespace or control characters. Every door a webhook, notify or
    tracking URL comes in by (control headers, the HTTP API, webhook registration) asks this:
    a URL the dispatcher cannot store or the sender cannot parse must be refused where the
    client sees why, not fail later where nobody does."""
    if len(value) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if _UNSAFE.search(value):
        return "the URL contains whitespace or control characters"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # urllib names the port in the message when it is the port
        return _BAD_PORT if "port" in str(exc).lower() else "the URL is malformed"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "the URL must be http:// or https:// with a host"
    if "@" in parts.netloc:  # httpx would send them as Basic auth, and logs would show them
        return "the URL must not carry credentials (deliveries are signed instead)"
    if port is not None and not 1 <= port <= 65535:
        return _BAD_PORT
    return _host_problem(parts.hostname)


def _host_problem(host: str) -> str | None:
    """Why `host` (lowercased, as urlsplit gives it) is no IP address or DNS name."""
    if len(host) > MAX_HOST:
        return f"the host name is longer than {MAX_HOST} characters"
    if ":" in host or _DOTTED_NUMBERS.fullmatch(host):  # an IPv6 or IPv4 literal
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "the host is not a valid IP address"
        return None
    try:
        ascii_host = host if host.isascii() else idna.encode(host).decode("ascii")
        if "xn--" in ascii_host:
            idna.decode(ascii_host)  # httpx decodes these labels (and fails on bad ones)
    except UnicodeError:  # idna.IDNAError is one
        return "the host is not a valid internationalized (IDNA) name"
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > MAX_HOST or not all(_LABEL.fullmatch(label) for label in labels):
        return "the host is not a valid DNS name"
    return None


def address(header: str, value: Any, what: str = "address") -> str:
    """A bare address (`Name <a@b>` is for `named_address`), as written."""
    value = text(header, value, 254, what)
    if not re.fullmatch(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+", value):
        raise DialectError(header, f"{what} {show(value)} is not an email address")
    return value


def json_object(header: str, value: str, what: str = "value") -> dict[str, Any]:
    """A JSON object. NaN and Infinity are refused: the store must be able to write it back."""
    try:
        data = json.loads(value, parse_constant=_refuse_constant)
    except RecursionError:
        raise DialectError(header, f"{what} is nested too deeply") from None
    except json.JSONDecodeError as e:
        raise DialectError(header, f"{what} is not valid JSON ({e.msg} at character {e.pos})") from None
    except ValueError:
        raise DialectError(header, f"{what} is not valid JSON") from None
    return obj(header, data, what)


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def obj(header: str, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DialectError(header, f"{what} must be a JSON object")
    return value


def string_map(header: str, value: Any, what: str, limit: int = MAX_METADATA) -> dict[str, str]:
    """Metadata: string keys and values; other JSON values are kept as compact JSON text."""
    value = obj(header, value, what)
    if len(value) > limit:
        raise DialectError(header, f"{what} has more than {limit} entries")
    return {
        text(header, k, 256, f"{what} key"): text(header, v if isinstance(v, str) else json.dumps(
            v, separators=(",", ":"), ensure_ascii=False), MAX_METADATA_VALUE, f"{what} {show(k)}")
        for k, v in value.items()
    }


def per_recipient(header: str, value: Any, what: str) -> dict[str, dict[str, Any]]:
    """`{address: {variable: value}}`, keyed by the lowercased address."""
    value = obj(header, value, what)
    if len(value) > MAX_RECIPIENTS:
        raise DialectError(header, f"{what} has more than {MAX_RECIPIENTS} recipients")
    return {address(header, k, f"{what} key").lower(): obj(header, v, f"{what} of {show(k)}")
            for k, v in value.items()}


def tag_list(header: str, value: str) -> tuple[str, ...]:
    """Comma-separated tags."""
    return tags(header, value.split(","))


def tags(header: str, values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        values = [values]
    found = tuple(dict.fromkeys(text(header, v, MAX_TAG, "tag") for v in values))
    if "" in found:
        raise DialectError(header, "empty tag")
    if len(found) > MAX_TAGS:
        raise DialectError(header, f"more than {MAX_TAGS} tags")
    return found


def file_refs(header: str, value: str) -> tuple[FileRef, ...]:
    """ZeptoMail's `key,key` or `key:name,key:name` (the two forms may be mixed)."""
    refs = []
    for item in value.split(","):
        key, colon, name = (part.strip() for part in item.partition(":"))
        if not re.fullmatch(r"[!-9;-~]{1,512}", key):
            raise DialectError(header, f"bad file key {show(key)}" if key else "empty file key")
        if colon and not name:
            raise DialectError(header, f"empty file name after {show(key)}")
        refs.append(FileRef(key, text(header, name, 255, "file name") if colon else None))
    if len(refs) > MAX_FILES:
        raise DialectError(header, f"more than {MAX_FILES} files")
    return tuple(refs)
