"""Zoho Campaigns (seed 000): `X-ZCEA-SMTP-DATA`, one JSON object describing a campaign.

`campaign_name` (or its alias `transmission_name`) names the campaign; `recipient_data` is keyed
by address, each with `name`, `additional_data` (contact fields, kept) and `merge_data` (the values
of `$[field|Default]$` merge tags); `from` {address, name} overrides the header From. Other keys
are ignored. The vendor's page shows the addresses blanked out (`""`); an empty address is refused.
"""

from __future__ import annotations

from typing import Any

from postroom.dialects.options import Sender, content_map
from postroom.dialects.table import Dialect
from postroom.dialects.values import (
    MAX_RECIPIENTS,
    DialectError,
    address,
    json_object,
    obj,
    show,
    text,
)


def smtp_data(header: str, value: str) -> dict[str, Any]:
    data = json_object(header, value)
    out: dict[str, Any] = {}
    for key in ("transmission_name", "campaign_name"):  # campaign_name wins when both are given
        if key in data:
            out["campaign_name"] = text(header, data[key], what=key)
    if "recipient_data" in data:
        out.update(_recipients(header, obj(header, data["recipient_data"], "recipient_data")))
    if "from" in data:
        sender = obj(header, data["from"], "from")
        name = text(header, sender.get("name", ""), what="from name")
        out["from_override"] = Sender(address(header, sender.get("address"), "from address"),
                                      name or None)
    return out


def _recipients(header: str, data: dict[str, Any]) -> dict[str, Any]:
    if len(data) > MAX_RECIPIENTS:
        raise DialectError(header, f"recipient_data has more than {MAX_RECIPIENTS} recipients")
    merge: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    for key, entry in data.items():
        where = f"recipient_data {show(key)}"
        addr = address(header, key, "recipient_data key").lower()
        entry = obj(header, entry, where)
        merge[addr] = content_map(header, entry.get("merge_data", {}), f"{where} merge_data")
        if entry.get("name"):
            names[addr] = text(header, entry["name"], what=f"{where} name")
        if entry.get("additional_data"):
            fields[addr] = content_map(header, entry["additional_data"],
                                       f"{where} additional_data")
    return {"recipient_vars": merge, "recipient_names": names, "recipient_fields": fields,
            "substitution_syntax": "zoho"}


DIALECT = Dialect("zoho", {"x-zcea-smtp-data": smtp_data})
HEADERS = DIALECT.headers
parse = DIALECT.parse
