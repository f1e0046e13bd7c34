"""ZeptoMail (seed 001): file-cache attachments, open and click tracking, a client reference.

`X-TM-FILE-KEY` is `key,key` or `key:name,key:name`; it may be repeated, as each
`message.addHeader("X-TM-FILE-KEY", …)` call in the vendor's example adds one more.
"""

from __future__ import annotations

from postroom.dialects.table import Dialect, to
from postroom.dialects.values import boolean, file_refs, text

DIALECT = Dialect(
    "zeptomail",
    {
        "x-tm-file-key": to("attachments", file_refs),
        "x-tm-open-track": to("track_opens", boolean),
        "x-tm-click-track": to("track_clicks", boolean),
        "x-tm-client-ref": to("client_reference", text),
    },
    repeatable=frozenset({"x-tm-file-key"}),
)
HEADERS = DIALECT.headers
parse = DIALECT.parse
