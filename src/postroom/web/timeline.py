"""A message's timeline as shown: runs of repeated opens and clicks folded into one row.

Anyone holding a message's pixel or a tracked link can add events to it, thousands of them; a
run of the same recipient opening (or clicking the same URL) again and again reads as one row,
"opened ×1000", so what happened between the runs (a bounce, a complaint) stays in sight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from postroom.model import Event, EventType

#: Event types whose repeats are folded (the data of the latest one is shown).
REPEATED = frozenset({EventType.OPENED, EventType.CLICKED})


@dataclass(frozen=True, slots=True)
class TimelineRow:
    #: the run's latest event (a single event: itself)
    event: Event
    #: when the run's first event happened
    first_at: datetime
    count: int = 1


def _same_run(a: Event, b: Event) -> bool:
    return (a.type is b.type and a.type in REPEATED and a.recipient == b.recipient
            and a.data.get("url") == b.data.get("url"))


def timeline(events: list[Event]) -> list[TimelineRow]:
    """`events` (oldest first) with consecutive repeats of one open or click folded."""
    out: list[TimelineRow] = []
    for event in events:
        if out and _same_run(out[-1].event, event):
            out[-1] = TimelineRow(event, out[-1].first_at, out[-1].count + 1)
        else:
            out.append(TimelineRow(event, event.at))
    return out
