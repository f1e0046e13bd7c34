"""Whether the writer socket of a data directory is already served, before a server binds it.

Why: the writer process binds `data_dir/writer.sock` afresh (removing the file first), which is
right after a crash, when the file is stale. But a second `postroom serve` started on the data
directory of a running one took the running server's socket that way, and removed it when it
exited. Several servers on one store (docs/DELIVERY.md allows them) each need a data directory
of their own; `runtime.run_server` asks this before anything else.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from postroom.store.writer_link import address

__all__ = ["SETTLE_SECONDS", "WriterSocketInUse", "ensure_unserved"]

#: How long a writer must go on answering to count as another server's. An orphaned writer (its
#: server was killed with SIGKILL) stops listening within about a second; a start right after
#: such a crash waits for that rather than being refused.
SETTLE_SECONDS = 3.0


class WriterSocketInUse(OSError):
    """A live writer process, another server's, answers on the socket."""


def ensure_unserved(path: Path, settle: float = SETTLE_SECONDS) -> None:
    """Return when nothing answers on `path` (no file, or a stale one the new writer replaces);
    raise WriterSocketInUse when something still answers after `settle` seconds."""
    deadline = time.monotonic() + settle
    while _answers(path):
        if time.monotonic() >= deadline:
            raise WriterSocketInUse(
                f"another `postroom serve` is running on data_dir {path.parent} (its writer"
                f" process answers on {path.name}): stop it first, or give this server a"
                " data_dir of its own")
        time.sleep(0.1)


def _answers(path: Path) -> bool:
    """Something accepts connections on the socket (a backlog so full that the connect times
    out counts too). Only a writer binds there, and one that is asked this way sees a client
    that closes without a request: nothing to answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(address(path))
        except TimeoutError:
            return True
        except OSError:  # no file, or no one listening on it (a stale file), or not a socket
            return False
        return True
