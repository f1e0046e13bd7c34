"""The kinds of value control headers carry, one parser each, shared by every dialect.

Every parser takes the header name as the client wrote it and refuses with a `DialectError` whose
problem is short and user-facing: the SMTP server answers `550 5.6.0 <header>: <problem>`. Limits
are at least each vendor's own, but bounded: headers are parsed before the 250, so a hostile one
must cost little.
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from postroom.dialects.options import FileRef

MAX_VALUE = 16 << 20  # one header value, in characters (10,000 recipients of merge data fit)
MAX_TEXT = 1000  # ids, names, references
MAX_URL = 2048
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
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in value:
        raise DialectError(header, f"{show(value)} is not an http(s) URL")
    return value


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
