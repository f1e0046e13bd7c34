"""Hold a SQLite store's write lock from another process, as a stuck writer would."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLD = """
import sys
from pathlib import Path
from postroom.store.write_lock import WriteLock
with WriteLock(Path(sys.argv[1])).held():
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Every write transaction on the SQLite file `db` blocks until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, f"{db.resolve()}-writer.lock"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder's readline returns: it lets go
        try:
            holder.wait(timeout=10)
        finally:
            holder.kill()
