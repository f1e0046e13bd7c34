"""Garbage-collector settings for Postroom's long-running processes.

Why: the long-lived heap of a server process (SQLAlchemy, pydantic, FastAPI, the email package)
is large, and every full collection walked it: 66-91 ms stalls of the SMTP event loop (all
sessions' replies wait) and 100-300 ms in the webhook process. Freezing what is alive once
start-up is done moves it out of the collector's sight; a full collection then walks only what
was made since. The young generation is collected less often too: most per-message garbage is
freed by reference counting before a collection would find it.
"""

from __future__ import annotations

import gc

GC_THRESHOLD_0 = 10_000  # allocations between young collections (CPython's default: 700)


def settle_heap() -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, 20, 20)
