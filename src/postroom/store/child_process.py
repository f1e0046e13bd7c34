"""A store-backed service in a child process of its own, watched and restarted by the parent.

Why one module: the delivery workers and the webhook service both run this way (each in its
own interpreter, so neither competes with SMTP intake for the interpreter lock) and need the
same care: a spawned child with its own store connections (relaxed fsync: see
`engine.make_engine`), a settled heap, a graceful stop on SIGTERM, a stop of its own when the
parent is gone (an orphan must not go on sending), and a restart when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from postroom.config.heap import BACKGROUND_SWITCH_INTERVAL_S, settle_heap
from postroom.config.logs import configure_logging
from postroom.config.settings import Settings

__all__ = ["Serve", "run_child", "supervise"]

#: Given the settings and the child's store: the service's run() and how to stop it gracefully
#: (None: cancel the run task, which the service treats as its graceful stop).
Serve = Callable[[Settings, Any], tuple[Awaitable[None], Callable[[], None] | None]]


async def supervise(target: Callable[..., None], settings: Settings, *, name: str,
                    grace: float, log: logging.Logger, args: tuple[Any, ...] | None = None
                    ) -> None:
    """Run `target(settings_dump, parent_pid)` (or `target(*args, parent_pid)`) in a spawned
    child until cancelled (then SIGTERM, `grace` seconds, SIGKILL); a child that ends is
    started again a second later."""
    ctx = multiprocessing.get_context("spawn")
    first = args if args is not None else (settings.model_dump(mode="json"),)
    while True:
        child = ctx.Process(target=target, args=(*first, os.getpid()), name=name, daemon=True)
        child.start()
        try:
            while child.is_alive():
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            child.terminate()
            await asyncio.to_thread(child.join, grace)
            if child.is_alive():
                child.kill()
            raise
        log.error("%s: the process ended (exit code %s); starting it again", name,
                  child.exitcode)
        await asyncio.sleep(1.0)


def run_child(dumped: dict[str, Any], parent: int, serve: Serve,
              loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """The child's side: open the store, run `serve` until SIGTERM/SIGINT or orphaned."""
    from postroom.store.api import Store

    configure_logging()
    settings = Settings(**dumped)
    store = Store(settings.storage_url, relaxed=True)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        running, stop = serve(settings, store)
        stop = stop or task.cancel
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)

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
        store.close()
