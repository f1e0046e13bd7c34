"""Garbage-collector and interpreter-lock settings for Postroom's long-running processes.

Why: the long-lived heap of a server process (SQLAlchemy, pydantic, FastAPI, the email package)
is large, and every full collection walked it: 66-91 ms stalls of the SMTP event loop (all
sessions' replies wait) and 100-300 ms in the webhook process. Freezing what is alive once
start-up is done moves it out of the collector's sight; a full collection then walks only what
was made since. The young generation is collected less often too: most per-message garbage is
freed by reference counting before a collection would find it.

The interpreter lock is handed over more often (every 0.5 ms instead of CPython's 5 ms): the
ingress's group-commit writer thread (with `[storage] writer_process = false`; by default the
commit runs in a process of its own) comes back from its fsync and then waits for the lock
while the event loop runs, and every session of that group commit waits for it in turn. With
10 SMTP sessions (one message in flight each) the switch interval was the largest part of that
chain: 1,219 -> 1,401-1,428 msgs/s in paired runs (bench/profile.py --sessions 10), with no
loss at 50 sessions or end to end. The delivery and webhook processes keep CPython's 5 ms: no
client waits on their threads' latency, and under end-to-end load their store calls cost 3-5
times the CPU they cost alone; there, 5 ms gave 1,669 against 1,587 msgs/s end to end (means
of six paired `bench/profile.py --e2e` runs, 4 of 6 pairs) and 793 against 842 us of server
CPU per message.
"""

from __future__ import annotations

import gc
import sys

GC_THRESHOLD_0 = 10_000  # allocations between young collections (CPython's default: 700)
SWITCH_INTERVAL_S = 0.0005  # longest hold of the interpreter lock when another thread waits
#: the delivery and webhook processes' switch interval: CPython's default
BACKGROUND_SWITCH_INTERVAL_S = 0.005


def settle_heap(switch_interval: float = SWITCH_INTERVAL_S) -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds;
    set the interpreter lock's switch interval (short where clients wait on a thread)."""
    sys.setswitchinterval(switch_interval)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, 20, 20)
