"""A dialect as a table: header name → parser of its value into `SendOptions` fields.

Most vendor headers are one value for one field, so a dialect module is mostly its table. Entries
apply in table order, not message order, so a later, more specific entry (Mailgun's
`X-Mailgun-Track-Clicks`) overrides an earlier, general one (`X-Mailgun-Track`) wherever the
client put them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from postroom.dialects.options import SendOptions
from postroom.dialects.values import (
    MAX_FILES,
    MAX_METADATA,
    MAX_METADATA_VALUE,
    MAX_RECIPIENTS,
    MAX_TAGS,
    DialectError,
    text,
)

Parse = Callable[[str, str], dict[str, Any]]
"""(header as written, value) → the `SendOptions` fields it sets."""


def to(name: str, kind: Callable[[str, str], Any]) -> Parse:
    """One header, one field."""
    return lambda header, value: {name: kind(header, value)}


def ignored(header: str, value: str) -> dict[str, Any]:
    """A vendor header Postroom has no use for: still stripped, so it never reaches recipients."""
    return {}


def metadata_prefix(prefix: str) -> Parse:
    """`<prefix><key>: value` headers, one metadata entry each (Postmark, Postroom)."""

    def parse(header: str, value: str) -> dict[str, Any]:
        key = header[len(prefix):]
        if not key:
            raise DialectError(header, "metadata key missing after the prefix")
        return {"metadata": {key: text(header, value, MAX_METADATA_VALUE)}}

    return parse


@dataclass(frozen=True)
class Dialect:
    name: str
    table: Mapping[str, Parse]  # lowercase header → parser, in order of application
    repeatable: frozenset[str] = frozenset()  # headers that may appear more than once
    prefixes: Mapping[str, Parse] = field(default_factory=dict)  # lowercase prefix → parser
    first_wins: frozenset[str] = frozenset()  # given more than once: the first counts

    @property
    def headers(self) -> frozenset[str]:
        return frozenset(self.table)

    def owns(self, name: str) -> bool:
        name = name.lower()
        return name in self.table or name.startswith(tuple(self.prefixes))

    def parse(self, headers: Sequence[tuple[str, str]]) -> SendOptions:
        """This dialect's headers among `headers` (unfolded, decoded); the others are ignored.

        An empty value counts as absent. A header given twice is refused unless repeatable,
        or unless the vendor documents that the first one counts (`first_wins`).
        """
        groups: dict[str, list[tuple[str, str]]] = {}
        for name, value in headers:
            if self.owns(name):
                groups.setdefault(name.lower(), []).append((name, value))
        if not groups:
            return SendOptions()
        rank = {key: i for i, key in enumerate(self.table)}
        result = SendOptions(dialects=(self.name,))
        for key in sorted(groups, key=lambda k: rank.get(k, len(rank))):
            group = groups[key]
            if key in self.first_wins:
                group = group[:1]
            if len(group) > 1 and key not in self.repeatable:
                raise DialectError(group[1][0], "given more than once")
            parse = self.table.get(key) or next(
                p for prefix, p in self.prefixes.items() if key.startswith(prefix))
            for name, value in group:
                if value.strip():
                    result = result.merge(SendOptions(**parse(name, value.strip())))
                    check_limits(name, result)
        return result


def check_limits(header: str, options: SendOptions) -> None:
    """Limits on what several headers add up to, blaming the header that went over."""
    for what, count, limit in (
        ("tags", len(options.tags), MAX_TAGS),
        ("files", len(options.attachments), MAX_FILES),
        ("metadata entries", len(options.metadata), MAX_METADATA),
        ("recipients with variables", len(options.recipient_vars), MAX_RECIPIENTS),
        ("extra recipients", len(options.extra_recipients), MAX_RECIPIENTS),
    ):
        if count > limit:
            raise DialectError(header, f"more than {limit} {what} in all")
