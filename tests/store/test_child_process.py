"""The parent's side of a supervised child (store/child_process.py): signals held while the child
starts, and the hard kill when the parent stops waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from postroom.store.child_process import STOP_SIGNALS, supervise


def _stubborn(path: str, parent: int) -> None:
    """A child that ignores SIGTERM (as one in its graceful stop does) and reports what it
    found: its pid and whether the stop signals were blocked when it began."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set()) & STOP_SIGNALS
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    Path(path).write_text(f"{os.getpid()} {int(blocked == STOP_SIGNALS)}")
    time.sleep(60)


def _gone(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True


def test_a_child_starts_with_the_stop_signals_held_and_a_second_cancel_kills_it(
        tmp_path: Path) -> None:
    report = tmp_path / "child"
    found: dict[str, Any] = {}

    async def main() -> None:
        task = asyncio.create_task(supervise(
            _stubborn, None, name="stubborn", grace=30.0,  # type: ignore[arg-type]
            log=logging.getLogger("test"), args=(str(report),)))
        while not report.exists() or not report.read_text():
            await asyncio.sleep(0.05)
        pid, held = map(int, report.read_text().split())
        found["held"] = held
        task.cancel()  # SIGTERM, which this child ignores: the grace of 30 s begins
        await asyncio.sleep(0.5)
        assert not _gone(pid)
        task.cancel()  # the caller stops waiting: SIGKILL now, not after the grace
        started = time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not _gone(pid) and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        found["gone"] = _gone(pid)

    asyncio.run(main())
    assert found == {"held": 1, "gone": True}
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, set()) & STOP_SIGNALS  # ours: restored
