"""settle_heap: the start-up heap is frozen, collections are rarer, the lock switches often."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc, sys
from postroom.config.heap import (BACKGROUND_SWITCH_INTERVAL_S, GC_THRESHOLD_0,
                                  SWITCH_INTERVAL_S, settle_heap)
kept = [object() for _ in range(1000)]
settle_heap()
assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()
assert gc.get_threshold()[0] == GC_THRESHOLD_0
assert abs(sys.getswitchinterval() - SWITCH_INTERVAL_S) < 1e-9, sys.getswitchinterval()
settle_heap(BACKGROUND_SWITCH_INTERVAL_S)  # the delivery and webhook processes
assert abs(sys.getswitchinterval() - 0.005) < 1e-9, sys.getswitchinterval()
print("ok")
"""


def test_settle_heap_in_a_fresh_interpreter() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
