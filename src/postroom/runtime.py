"""Composition root: the only module that sees every package. Builds settings, store, listeners,
the HTTP app and delivery workers, and wires the SMTP server's handler port to submission.

Process model: the parent prepares (migrations, dev certificate, first key) and runs everything;
with `[smtp] processes = N` it also starts N-1 ingress-only children that share the listening
sockets through SO_REUSEPORT. With `[storage] writer_process` (the default) every ingress process
hands its accepted messages to one writer process (store/writer_process.py), a supervised child
like the delivery and webhook processes. All of them coordinate only through the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
from pathlib import Path
from typing import Any

from postroom.config.heap import settle_heap
from postroom.config.logs import configure_logging
from postroom.config.settings import Settings
from postroom.inbound.handler import IngressHandler
from postroom.inbound.service import InboundService
from postroom.smtp.server import (
    ConnectionLimiter,
    ListenerConfig,
    ServerOptions,
    close_sessions,
    start_listeners,
)
from postroom.smtp.tls import ensure_dev_certificate, server_context
from postroom.submission.service import SubmissionService
from postroom.submission.throttle import AuthThrottle

log = logging.getLogger("postroom")
SHUTDOWN_GRACE_SECONDS = 10.0


def split_hostport(value: str, default_port: int = 25) -> tuple[str, int]:
    """'host:port', '[v6]:port' or 'host' → (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host or "0.0.0.0", int(port)
    return value, default_port


def listener_configs(settings: Settings) -> list[ListenerConfig]:
    s = settings.smtp
    out = []
    for name, addr, implicit, require in (
        ("plain", s.listen_plain, False, False),
        ("implicit_tls", s.listen_implicit_tls, True, False),
        ("starttls", s.listen_starttls, False, not s.allow_plaintext_auth),
        ("inbound", s.listen_inbound, False, False),
    ):
        if addr:
            host, port = split_hostport(addr)
            out.append(ListenerConfig(name, host, port, implicit_tls=implicit, require_tls=require))
    return out


def tls_files(settings: Settings) -> tuple[Path, Path]:
    if settings.smtp.tls_cert and settings.smtp.tls_key:
        return Path(settings.smtp.tls_cert), Path(settings.smtp.tls_key)
    return ensure_dev_certificate(settings.data_dir, settings.smtp.hostname)


def use_fast_event_loop() -> None:
    """uvloop halves the cost of the transport layer; plain asyncio still works without it."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def spawn_lightly() -> None:
    """Spawned children (writer, delivery, webhooks, ingress) load only what their target
    needs. By default multiprocessing also re-runs the parent's main script in each child
    (as `__mp_main__`), and the `postroom` console script imports the whole CLI: 20-30 MB per
    child. It skips that for a main module named `*.__main__`, as under `python -m postroom`:
    make the console script's main module say so."""
    import importlib.util

    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.util.find_spec("postroom.__main__")


def run_server(settings: Settings) -> None:
    """`postroom serve`: prepare, then run until SIGTERM/SIGINT."""
    from postroom.admin.accounts import bootstrap
    from postroom.store.api import Store

    spawn_lightly()
    configure_logging()
    use_fast_event_loop()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.storage.writer_process:  # not another running server's socket (OSError)
        from postroom.store.writer_link import socket_path
        from postroom.store.writer_socket import ensure_unserved

        ensure_unserved(socket_path(settings.data_dir))
    cert, key = tls_files(settings)
    store = Store.open(settings.storage_url, commit_timeout=settings.storage.commit_timeout)
    first = bootstrap(store, settings.smtp.hostname)
    if first is not None:
        account, api_key = first
        # An operator key: whoever holds it manages every account, so the text must not
        # invite pasting it into an application's SMTP settings.
        print(
            f"Created account '{account.name}' (sender domain example.com) and an operator "
            f"(admin) API key, scopes send, read, admin (shown once):\n  {api_key}\n"
            "Keep it for yourself: it manages every account (accounts, keys, domains).\n"
            "For an application (SMTP user 'apikey', password = the key; or the HTTP API) "
            "create a send-only key:\n"
            f"  postroom keys create --account {account.name} --scope send\n"
            "Add your own sender domains with `postroom accounts create`.",
            flush=True,
        )
    children: list[Any] = []
    try:
        asyncio.run(_serve(settings, store, cert, key, full=True, children=children))
    finally:
        for p in children:
            p.terminate()
        for p in children:
            p.join(5)
        store.close()


def _die_with_parent() -> None:
    """Linux: an ingress child gets SIGTERM when the parent dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ingress_child(dumped: dict[str, Any]) -> None:
    from postroom.store.api import Store

    _die_with_parent()
    configure_logging()
    use_fast_event_loop()
    settings = Settings(**dumped)
    cert, key = tls_files(settings)
    local = Store(settings.storage_url, commit_timeout=settings.storage.commit_timeout)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, local, cert, key, full=False))
    local.close()


async def _serve(settings: Settings, local: Any, cert: Path, key: Path, *, full: bool,
                 children: list[Any] | None = None) -> None:
    """One ingress process. `full`: the parent, which also starts the writer process, the
    other ingress processes (into `children`), the HTTP API, delivery and webhooks."""
    from postroom.store.writer_link import RemoteEnqueue, socket_path

    s = settings.smtp
    opts = ServerOptions(
        hostname=s.hostname,
        max_message_size=s.max_message_size,
        max_recipients=s.max_recipients,
        allow_plaintext_auth=s.allow_plaintext_auth,
        idle_timeout=s.idle_timeout,
        data_timeout=s.data_timeout,
        ssl_context=server_context(cert, key),
        limiter=ConnectionLimiter(s.max_connections, s.max_connections_per_ip),
    )
    reuse_port = s.processes > 1
    loop = asyncio.get_running_loop()
    writer: asyncio.Task[None] | None = None
    store: Any = local
    if settings.storage.writer_process:
        if full:
            from postroom.store.child_process import supervise
            from postroom.store.writer_process import child_main

            writer = loop.create_task(supervise(
                child_main, settings, name="postroom-writer",
                grace=SHUTDOWN_GRACE_SECONDS + 5, log=log,
                args=(settings.storage_url, str(socket_path(settings.data_dir)))),
                name="writer")
        store = RemoteEnqueue(local, socket_path(settings.data_dir))
        try:
            await store.connect()  # the writer is listening before the first session
        except OSError as exc:
            raise RuntimeError(f"the writer process is not listening on {store.path}: {exc}"
                               " (see its log above)") from exc
    if children is not None:  # the parent's
        ctx = multiprocessing.get_context("spawn")
        for _ in range(s.processes - 1):
            p = ctx.Process(target=_ingress_child, args=(settings.model_dump(mode="json"),),
                            daemon=True)
            p.start()
            children.append(p)
    service = SubmissionService(
        store, hostname=s.hostname,
        throttle=AuthThrottle(s.auth_failure_limit, s.auth_failure_window),
        max_recipients=s.max_recipients,
    )
    handler = IngressHandler(
        service, InboundService(store, on_suppressed=service.suppressions.add_local,
                                feedback_address=s.feedback_address, hostname=s.hostname))
    servers = await start_listeners(opts, listener_configs(settings), lambda: handler,
                                    reuse_port=reuse_port)
    background: list[asyncio.Task[Any]] = []
    if full:
        for lc in listener_configs(settings):
            log.info("smtp %s listening on %s:%d", lc.name, lc.host, lc.port)
        background += await _start_extras(settings, store, service)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settle_heap()
    print("postroom ready", flush=True) if full else None
    await stop.wait()
    log.info("shutting down")
    for server in servers:
        server.close()
    for child in children or ():
        child.terminate()  # each ends its own sessions, then closes its link to the writer
    for task in background:
        task.cancel()
    # idle sessions get 421 now, a transaction under way may finish within the grace: its
    # commit needs the writer link, so that link is closed only once they are all gone
    sessions = loop.create_task(close_sessions(opts, SHUTDOWN_GRACE_SECONDS))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(srv.wait_closed() for srv in servers), *background,
                           return_exceptions=True),
            SHUTDOWN_GRACE_SECONDS,
        )
    await sessions
    for child in children or ():
        await asyncio.to_thread(child.join, SHUTDOWN_GRACE_SECONDS)
    if isinstance(store, RemoteEnqueue):
        store.disconnect()
    if writer is not None:  # last: it commits and answers what it has, then ends
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def _start_extras(settings: Settings, store: Any, service: SubmissionService
                        ) -> list[asyncio.Task[Any]]:
    """The HTTP server and, when enabled, the delivery workers and the webhook service (each a
    child process) run beside the ingress. Cancelling their tasks is their graceful
    stop (see delivery/service.py, events/service.py)."""
    import uvicorn

    from postroom.api.app import create_app
    from postroom.api.serving import uvicorn_config
    from postroom.web import with_dashboard

    host, port = split_hostport(settings.http.listen, 8025)
    config = uvicorn_config(
        # one in-memory suppression view serves both doors: API changes reach SMTP at once
        with_dashboard(create_app(settings, store, suppression_cache=service.suppressions),
                       settings, store),
        settings, host, port,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    log.info("http listening on %s:%d", host, port)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(server.serve())]
    if settings.delivery.enabled:
        from postroom.delivery.service import run_in_own_process as run_delivery

        tasks.append(loop.create_task(run_delivery(settings), name="delivery"))
    if settings.webhooks.enabled:
        from postroom.events.service import run_in_own_process

        tasks.append(loop.create_task(run_in_own_process(settings), name="webhooks"))
    return tasks
