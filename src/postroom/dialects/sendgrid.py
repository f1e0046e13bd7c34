"""SendGrid's `X-SMTPAPI`: one JSON object carrying recipients, substitutions and settings.

Read: `to`, `sub`, `section`, `category`, `unique_args`, `filters` (clicktrack, opentrack,
subscriptiontrack, templates), `send_at`, `send_each_at`. Other keys (`asm_group_id`, `ip_pool`,
`batch_id`, other filters) are accepted and ignored, so an application that sets them still sends.
`sub` values pair with `to` by position; with `to` given, each recipient's values are also
written as its variables so delivery needs no positions. Without `to` they pair with the client's
RCPTs, which only ingress knows (`submission.service.by_client_position`). `sub` values and
`section` texts are body text: kept as given, line breaks included.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from postroom.dialects.options import content, content_map
from postroom.dialects.table import Dialect
from postroom.dialects.values import (
    MAX_RECIPIENTS,
    DialectError,
    address,
    json_object,
    moment,
    obj,
    show,
    string_map,
    tags,
    text,
)

MAX_CATEGORIES = 10  # SendGrid's own limit


def smtpapi(header: str, value: str) -> dict[str, Any]:
    data = json_object(header, value)
    out: dict[str, Any] = {}
    to = _recipients(header, data.get("to", []))
    if to:
        out["extra_recipients"] = tuple(a for a, _ in to)
        out["recipient_names"] = {a.lower(): n for a, n in to if n}
    if "sub" in data:
        sub = _substitutions(header, data["sub"], len(to))
        out["sendgrid_sub"] = sub
        out["substitution_syntax"] = "sendgrid"
        if to:
            out["recipient_vars"] = {
                a.lower(): {k: values[i] for k, values in sub.items()} for i, (a, _) in enumerate(to)}
    if "section" in data:
        out["sendgrid_sections"] = content_map(header, data["section"], "section")
    if "category" in data:
        out["tags"] = tags(header, data["category"])
        if len(out["tags"]) > MAX_CATEGORIES:
            raise DialectError(header, f"more than {MAX_CATEGORIES} categories")
    if "unique_args" in data:
        out["metadata"] = string_map(header, data["unique_args"], "unique_args")
    out.update(_filters(header, obj(header, data.get("filters", {}), "filters")))
    if "send_at" in data and "send_each_at" in data:
        raise DialectError(header, "send_at and send_each_at exclude each other")
    if "send_at" in data:
        out["send_at"] = moment(header, data["send_at"], "send_at")
    if "send_each_at" in data:
        out["send_each_at"] = _each_at(header, data["send_each_at"], to)
    return out


def _recipients(header: str, value: Any) -> list[tuple[str, str]]:
    """`to`: addresses, bare or `Name <address>`, as (address, name)."""
    if not isinstance(value, list) or len(value) > MAX_RECIPIENTS:
        raise DialectError(header, f"to must be a list of at most {MAX_RECIPIENTS} addresses")
    found = []
    for item in value:
        name, addr = parseaddr(text(header, item, 1000, "to address"))
        found.append((address(header, addr or item, "to address"), name))
    return found


def _substitutions(header: str, value: Any, count: int) -> dict[str, tuple[str, ...]]:
    sub = {}
    for key, values in obj(header, value, "sub").items():
        if not isinstance(values, list):
            raise DialectError(header, f"sub {show(key)} must be a list")
        if count and len(values) != count:
            raise DialectError(header, f"sub {show(key)} has {len(values)} values for {count} "
                                       "recipients in to")
        sub[text(header, key, 256, "sub key")] = tuple(
            content(header, v, 10_000, f"sub {show(key)} value") for v in values)
    return sub


def _each_at(header: str, value: Any, to: list[tuple[str, str]]) -> dict[str, Any]:
    if not isinstance(value, list) or len(value) != len(to):
        raise DialectError(header, "send_each_at needs one time for each address in to")
    return {a.lower(): moment(header, t, "send_each_at") for (a, _), t in zip(to, value, strict=True)}


# filter → (setting → SendOptions field)
_FILTERS = {
    "clicktrack": {"enable": "track_clicks", "enable_text": "track_text_clicks"},
    "opentrack": {"enable": "track_opens"},
    "subscriptiontrack": {"enable": "unsubscribe"},
}


def _filters(header: str, filters: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, settings_of in _FILTERS.items():
        settings = _settings(header, filters, name)
        for setting, field_name in settings_of.items():
            if setting in settings:
                out[field_name] = _flag(header, f"{name} {setting}", settings[setting])
    templates = _settings(header, filters, "templates")
    if _flag(header, "templates enable", templates.get("enable", 0)):
        out["template_id"] = text(header, templates.get("template_id"), what="template_id")
    return out


def _settings(header: str, filters: dict[str, Any], name: str) -> dict[str, Any]:
    block = obj(header, filters.get(name, {}), f"filter {name}")
    return obj(header, block.get("settings", {}), f"filter {name} settings")


def _flag(header: str, what: str, value: Any) -> bool:
    """SendGrid writes switches as 0/1, "0"/"1" or true/false."""
    if value in (0, 1, "0", "1") or isinstance(value, bool):
        return bool(int(value))
    raise DialectError(header, f"{what} must be 0 or 1")


# SendGrid: "if multiple X-SMTPAPI headers are present, it will adhere to the first" (all
# of them are stripped, as control headers always are).
DIALECT = Dialect("sendgrid", {"x-smtpapi": smtpapi}, first_wins=frozenset({"x-smtpapi"}))
HEADERS = DIALECT.headers
parse = DIALECT.parse
