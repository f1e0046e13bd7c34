"""Amazon SES: configuration set and message tags (`name=value, name=value`).

SES message tags are name/value pairs, so they become metadata, checked against SES's own rules
(ASCII letters, digits, `_` and `-`, 256 characters at most). The ARN headers and list management
options are stripped; a list-management header asks for List-Unsubscribe.
"""

from __future__ import annotations

import re

from postroom.dialects.table import Dialect, ignored, to
from postroom.dialects.values import MAX_METADATA, DialectError, show, text

_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")


def message_tags(header: str, value: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in value.split(","):
        name, equals, tag_value = (part.strip() for part in item.partition("="))
        if not equals or not name:
            raise DialectError(header, f"expected name=value, not {show(item.strip())}")
        for part in (name, tag_value):
            if not _NAME.fullmatch(part):
                raise DialectError(header, f"{show(part)} must be 1-256 letters, digits, _ or -")
        found[name] = tag_value
    if len(found) > MAX_METADATA:
        raise DialectError(header, f"more than {MAX_METADATA} tags")
    return found


DIALECT = Dialect(
    "ses",
    {
        "x-ses-configuration-set": to("configuration_set", text),
        "x-ses-message-tags": to("metadata", message_tags),
        "x-ses-list-management-options": lambda h, v: {"unsubscribe": bool(text(h, v))},
        "x-ses-source-arn": ignored,
        "x-ses-from-arn": ignored,
        "x-ses-return-path-arn": ignored,
    },
    repeatable=frozenset({"x-ses-message-tags"}),
)
HEADERS = DIALECT.headers
parse = DIALECT.parse
