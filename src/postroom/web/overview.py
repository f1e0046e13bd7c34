"""The overview: what happened to the account's mail in the last 24 hours, 7 days, and per day."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from postroom.model import EventType
from postroom.store.dashboard_data import MESSAGES
from postroom.web.auth import signed_in
from postroom.web.context import dashboard, run
from postroom.web.render import page

#: Columns, in the order of a message's life: (key in the counts, heading).
COLUMNS = [(MESSAGES, "accepted messages")] + [(t.value, t.value) for t in EventType]
WINDOWS = [("24h", "Last 24 hours"), ("7d", "Last 7 days")]


async def overview(request: Request) -> Response:
    viewer = await signed_in(request)
    counts = await run(request, viewer.account.id, dashboard(request).data.activity,
                       viewer.account.id, datetime.now(UTC))
    days = [(label, row) for label, row in counts.items() if label not in dict(WINDOWS)]
    return page(request, "overview.html", viewer=viewer, columns=COLUMNS,
                windows=[(key, title, counts[key]) for key, title in WINDOWS],
                days=list(reversed(days)))
