"""A server refuses a data directory whose writer socket another live writer serves, and takes
over a stale one (a crashed server's), or one whose orphaned writer stops listening soon."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from postroom.store.writer_socket import WriterSocketInUse, ensure_unserved


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def test_a_live_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "writer.sock"
    with listening(path), pytest.raises(WriterSocketInUse, match="another `postroom serve`"):
        ensure_unserved(path, settle=0.3)
    assert path.exists()  # left alone


def test_no_file_and_a_stale_file_are_free(tmp_path: Path) -> None:
    path = tmp_path / "writer.sock"
    ensure_unserved(path, settle=0.3)
    listening(path).close()  # the file stays, no one listens: a crashed server's
    assert path.exists()
    started = time.monotonic()
    ensure_unserved(path, settle=5.0)
    assert time.monotonic() - started < 1.0


def test_an_orphaned_writer_that_stops_listening_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "writer.sock"
    sock = listening(path)
    threading.Timer(0.5, sock.close).start()
    ensure_unserved(path, settle=5.0)
