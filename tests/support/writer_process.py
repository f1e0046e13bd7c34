"""The writer process's loop in a thread of the test process, so a test can stop it and read
its counters (tests/e2e/test_writer_process.py drives the real process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from postroom.store.writer_process import Writer


@contextmanager
def running_writer(store_url: str, path: Path) -> Iterator[Writer]:
    writer = Writer(store_url, path, grace=5.0)
    thread = threading.Thread(target=writer.run, name="test-writer", daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stop()
        thread.join(10)
        assert not thread.is_alive(), "the writer did not stop"
