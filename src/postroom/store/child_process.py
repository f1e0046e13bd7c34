"""A store-backed service in a child process of its own, watched and restarted by the parent.

Why one module: the delivery workers and the webhook service both run this way (each in its
own interpreter, so neither competes with SMTP intake for the interpreter lock) and need the
same care: a spawned child with its own store connections (relaxed fsync: see
`engine.make_engine`), a settled heap, a graceful stop on SIGTERM, a stop of its own when the
parent is gone (an orphan must not go on sending), and a restart when it dies.

Signals: Ctrl-C, `kill -- -PGID` and systemd's KillMode=control-group signal the whole process
group, so a child gets the signal itself and then its parent's SIGTERM as well. The first one
starts the graceful stop; any later SIGINT/SIGTERM is only logged (a second cancel used to cut
delivery's lease release short). The parent's SIGKILL after its grace still ends a child that
takes too long. A child starts with SIGINT and SIGTERM blocked (`held_signals`: the mask is
inherited through fork and exec) and unblocks them once its handlers are in place, so a signal
that comes while it is still importing is handled then, as a graceful stop, instead of a
KeyboardInterrupt traceback from the middle of the spawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from postroom.config.heap import BACKGROUND_SWITCH_INTERVAL_S, settle_heap
from postroom.config.logs import configure_logging
from postroom.config.settings import Settings

__all__ = ["STOP_SIGNALS", "Serve", "held_signals", "release_signals", "run_child", "supervise"]

log = logging.getLogger("postroom")
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

#: Given the settings and the child's store: the service's run() and how to stop it gracefully
#: (None: cancel the run task, which the service treats as its graceful stop).
Serve = Callable[[Settings, Any], tuple[Awaitable[None], Callable[[], None] | None]]


async def supervise(target: Callable[..., None], settings: Settings, *, name: str,
                    grace: float, log: logging.Logger, args: tuple[Any, ...] | None = None
                    ) -> None:
    """Run `target(settings_dump, parent_pid)` (or `target(*args, parent_pid)`) in a spawned
    child until cancelled (then SIGTERM, `grace` seconds, SIGKILL; SIGKILL at once when
    cancelled again meanwhile: the caller has stopped waiting); a child that ends is started
    again a second later. The target must unblock STOP_SIGNALS (see the module docstring)."""
    ctx = multiprocessing.get_context("spawn")
    first = args if args is not None else (settings.model_dump(mode="json"),)
    while True:
        child = ctx.Process(target=target, args=(*first, os.getpid()), name=name, daemon=True)
        with held_signals():
            child.start()
        try:
            while child.is_alive():
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            child.terminate()
            try:
                await asyncio.to_thread(child.join, grace)
            finally:
                if child.is_alive():
                    child.kill()
            raise
        log.error("%s: the process ended (exit code %s); starting it again", name,
                  child.exitcode)
        await asyncio.sleep(1.0)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Block STOP_SIGNALS in this thread for the duration: a process started meanwhile
    inherits the mask, and this thread gets what came in once the block ends.

    The first spawn also starts multiprocessing's resource tracker, which unblocks SIGINT and
    SIGTERM in the calling thread once it has started it: it is started here first."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def release_signals() -> None:
    """The child's handlers are in place: take the signals `held_signals` kept pending."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def run_child(dumped: dict[str, Any], parent: int, serve: Serve,
              loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """The child's side: open the store, run `serve` until SIGTERM/SIGINT or orphaned; the
    first of these stops it, later ones are only logged."""
    from postroom.store.api import Store

    configure_logging()
    settings = Settings(**dumped)
    store = Store(settings.storage_url, relaxed=True)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        running, graceful = serve(settings, store)
        begin = graceful or task.cancel
        stopping = False

        def stop(why: str = "orphaned") -> None:
            nonlocal stopping
            if stopping:
                log.info("%s: %s: already stopping gracefully",
                         multiprocessing.current_process().name, why)
                return
            stopping = True
            begin()

        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop, sig.name)
        release_signals()

        async def orphaned() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(1.0)
            stop()

        watchdog = asyncio.create_task(orphaned())
        try:
            await running
        finally:
            watchdog.cancel()

    try:
        settle_heap(BACKGROUND_SWITCH_INTERVAL_S)  # start-up is done: see config/heap.py
        with asyncio.Runner(loop_factory=loop_factory) as runner, \
                contextlib.suppress(asyncio.CancelledError):
            runner.run(main())
    finally:
        for sig in STOP_SIGNALS:  # ending anyway: a late Ctrl-C must not raise in the clean-up
            signal.signal(sig, signal.SIG_IGN)
        store.close()
