"""Postmark: one tag, metadata headers, open and link tracking, message stream.

`X-PM-TrackLinks` names where links are tracked: `None`, `HtmlAndText`, `HtmlOnly`, `TextOnly`.
`X-PM-KeepID` (keep the client's Message-ID) is stripped without effect: Postroom always keeps it.
"""

from __future__ import annotations

from typing import Any

from postroom.dialects.table import Dialect, ignored, metadata_prefix, to
from postroom.dialects.values import DialectError, boolean, tags, text

# value (lowercase) → (track_clicks, track_text_clicks)
LINK_TRACKING = {
    "none": (False, False),
    "htmlandtext": (True, True),
    "htmlonly": (True, False),
    "textonly": (False, True),
}


def track_links(header: str, value: str) -> dict[str, Any]:
    try:
        html, plain = LINK_TRACKING[value.strip().lower()]
    except KeyError:
        raise DialectError(header, "expected None, HtmlAndText, HtmlOnly or TextOnly") from None
    return {"track_clicks": html, "track_text_clicks": plain}


DIALECT = Dialect(
    "postmark",
    {
        "x-pm-tag": to("tags", tags),
        "x-pm-trackopens": to("track_opens", boolean),
        "x-pm-tracklinks": track_links,
        "x-pm-message-stream": to("message_stream", text),
        "x-pm-keepid": ignored,
    },
    prefixes={"x-pm-metadata-": metadata_prefix("x-pm-metadata-")},
)
HEADERS = DIALECT.headers
PREFIXES = tuple(DIALECT.prefixes)
parse = DIALECT.parse
