"""Finding the template an HTTP request names: by id or by its name within the account.

The store answers None both for no match and for a name shared by several templates (stored
before names had to be unique); this tells the two apart so the client learns to use the id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from postroom.model.records import Template


async def find_template(store: Any, account_id: str, ref: str
                        ) -> tuple[Template | None, str, dict[str, Any]]:
    """(template, "", {}) when found, else (None, message, details) for the error answer."""
    found = await asyncio.to_thread(store.get_template, account_id, ref)
    if found is not None:
        return found, "", {}
    same = [t.id for t in await asyncio.to_thread(store.list_templates, account_id)
            if t.name == ref]
    if len(same) > 1:
        return None, (f"Template name {ref[:200]!r} matches {len(same)} templates; "
                      "refer to one by its id."), {"id": ref, "ids": same}
    return None, "Unknown template.", {"id": ref}
