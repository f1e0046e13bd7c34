"""What each recipient is sent: stored message + its options + the account → `render.copy`.

`CopyMaker.prepare` turns a stored message into a `Copies` once (cached per message for `ttl`
seconds, and never prepared twice at the same time): it reads the message's `SendOptions`, loads
its template, its file-cache attachments and the tracking secret through the store, and decides
the tracking switches: the message's own (from its control headers) first, then the account's
defaults. Delivery notices (DSNs) are never tracked.

`render_each` then renders and DKIM-signs each recipient's copy; it is CPU work, meant for a
thread (RSA signing releases the GIL). A copy that cannot be rendered is returned as the error,
so that only that recipient is deferred. A message that cannot be prepared at all (a bug, a
store read failing) becomes `Copies.unrenderable`: each of its copies is that error, so its own
recipients are deferred (retried on the usual schedule, and failed with a DSN when the message
expires), never the other messages of the batch or destination.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from postroom.delivery import verp
from postroom.delivery.signing import received_field, render_copy
from postroom.dialects import SendOptions
from postroom.model import Account, Claim, MessageRecord
from postroom.render.attachments import File
from postroom.render.copy import Copies, Recipient, Tracking, needs_parsing
from postroom.render.dkim import DkimSigner
from postroom.render.personalize import Substitution
from postroom.render.tracking import Links

log = logging.getLogger("postroom.delivery")

__all__ = ["LINKS_SECRET", "CopyMaker", "tracking_switches"]

#: Rendered messages kept at most (besides the byte cap): a batch rarely spans more.
MAX_CACHED_MESSAGES = 2000
#: The store secret that signs tracking and unsubscribe links (the HTTP endpoints verify it).
LINKS_SECRET = "links"
#: Seconds for which a prepared message is not read from the store again (`recent`).
RECENT = 30.0


def tracking_switches(options: SendOptions, account: Account | None) -> Tracking:
    """The message's switches where its headers set them, else the account's defaults.
    List-Unsubscribe: asked for, or bulk mail (a campaign), or the account wants it everywhere;
    never when the headers turned it off."""
    a = account or Account(id="", name="")
    clicks = a.track_clicks if options.track_clicks is None else options.track_clicks
    return Tracking(
        opens=a.track_opens if options.track_opens is None else options.track_opens,
        clicks=clicks,
        text_clicks=bool(options.track_text_clicks),
        unsubscribe=options.unsubscribe if options.unsubscribe is not None
        else (options.is_bulk or a.list_unsubscribe),
    )


def _stored_positions(message_id: str, options: SendOptions, found: MessageRecord | None
                      ) -> dict[str, int]:
    """SendGrid `sub` positions of mail queued before ingress stored each recipient's values as
    its variables (by the client's RCPT order, `submission.service.by_client_position`). The
    stored order is the client's only if nothing was refused or merged: used only when every
    list has one value per stored recipient, else the values stay empty, never someone else's."""
    recipients = found.recipients if found else ()
    if not recipients or any(len(v) != len(recipients) for v in options.sendgrid_sub.values()):
        log.warning("message %s: SendGrid sub values do not match its recipients; sent "
                    "without them", message_id)
        return {}
    return {r.address.lower(): i for i, r in enumerate(recipients)}


class _Entry:
    __slots__ = ("born", "copies", "positions", "raw", "record", "size")

    def __init__(self, record: MessageRecord, raw: bytes, copies: Copies,
                 positions: dict[str, int], now: float) -> None:
        self.record, self.raw, self.copies, self.positions = record, raw, copies, positions
        self.size = copies.size
        self.born = now


class CopyMaker:
    def __init__(
        self, store: Any, *, public_url: str | None, verp_secret: bytes, ttl: float = 60.0,
        max_bytes: int = 64 << 20, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.public_url, self.verp_secret = store, public_url, verp_secret
        self.ttl, self.max_bytes, self.clock = ttl, max_bytes, clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._secret: bytes | None = None
        # Rendering has threads of its own, so that store calls never queue behind it.
        self._threads = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)),
                                           thread_name_prefix="postroom-render")

    def recent(self, message_id: str) -> tuple[MessageRecord, bytes] | None:
        """The stored message as prepared less than RECENT seconds ago (messages do not
        change once stored)."""
        hit = self._cache.get(message_id)
        if hit is None or hit.born + RECENT < self.clock():
            return None
        return hit.record, hit.raw

    async def prepare(self, record: MessageRecord, raw: bytes, account: Account | None
                      ) -> tuple[Copies, dict[str, int]]:
        """(the message's Copies, SendGrid positions by lowercased address, when needed)."""
        hit = self._cache.get(record.id)
        if hit is not None and hit.born + self.ttl > self.clock():
            self._cache.move_to_end(record.id)
            return hit.copies, hit.positions
        pending = self._pending.get(record.id)
        if pending is not None:
            entry = await asyncio.shield(pending)
            return entry.copies, entry.positions
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._pending[record.id] = future
        try:
            entry = await self._prepared(record, raw, account)
            future.set_result(entry)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._pending[record.id]
        self._keep(record.id, entry)
        return entry.copies, entry.positions

    def _keep(self, message_id: str, entry: _Entry) -> None:
        """LRU by bytes and by count; the running total keeps this O(1) per message (summing
        the cache here was quadratic and took half the delivery thread under load)."""
        previous = self._cache.pop(message_id, None)
        if previous is not None:
            self._bytes -= previous.size
        self._cache[message_id] = entry
        self._bytes += entry.size
        while len(self._cache) > 1 and (self._bytes > self.max_bytes
                                        or len(self._cache) > MAX_CACHED_MESSAGES):
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.size

    async def _prepared(self, record: MessageRecord, raw: bytes, account: Account | None
                        ) -> _Entry:
        """`_build`, or an entry whose copies are its error. Deferring is right even for an
        error that repeats: it is ours (a bug, a store hiccup), and fixing it must not have
        cost the mail; the message's expiry bounds the retries."""
        try:
            return await self._build(record, raw, account)
        except Exception as exc:
            log.exception("message %s could not be prepared; its recipients are deferred",
                          record.id)
            copies = Copies.unrenderable(exc, message_id=record.id,
                                         account_id=record.account_id)
            return _Entry(record, raw, copies, {}, self.clock())

    async def _build(self, record: MessageRecord, raw: bytes, account: Account | None) -> _Entry:
        if record.source == "dsn":
            return _Entry(record, raw, Copies(raw, message_id=record.id,
                                              account_id=record.account_id), {}, self.clock())
        options = SendOptions.from_json(record.options or {})
        switches = tracking_switches(options, account)
        links = None
        base = (account.tracking_base_url if account else None) or self.public_url
        if switches.any and base:
            if self._secret is None:
                self._secret = await asyncio.to_thread(self.store.get_or_create_secret,
                                                       LINKS_SECRET)
            links = Links(base.rstrip("/"), self._secret)
        elif switches.any:
            log.warning("message %s: no tracking base URL ([http] public_url or the account's "
                        "tracking URL); sent without tracking or List-Unsubscribe", record.id)
        template = None
        if options.template_id:
            template = await asyncio.to_thread(self.store.get_template, record.account_id,
                                               options.template_id)
            if template is None:
                log.warning("message %s: template %s is gone; sent as submitted", record.id,
                            options.template_id)
        files = await self._files(record, options, template.attachments if template else ())
        positions: dict[str, int] = {}
        if options.sendgrid_sub and not options.recipient_vars:  # queued before the fix
            found = await asyncio.to_thread(self.store.get_message, record.id)
            positions = _stored_positions(record.id, options, found)
        sender = options.from_override
        substitution = Substitution(
            syntax=options.syntax, chosen=options.substitution_syntax is not None,
            global_vars=options.global_vars,
            recipient_vars=options.recipient_vars, recipient_fields=options.recipient_fields,
            sendgrid_sub=options.sendgrid_sub, sendgrid_sections=options.sendgrid_sections)
        if links is None:
            switches = Tracking()
        make = functools.partial(
            Copies, raw, message_id=record.id, account_id=record.account_id,
            substitution=substitution, tracking=switches, links=links, template=template,
            files=files, sender=(sender.address, sender.name) if sender else None,
            names=options.recipient_names)
        parse = needs_parsing(substitution, switches, template, files, make.keywords["sender"])
        copies = await asyncio.to_thread(make) if parse else make()  # parsing: in a thread
        return _Entry(record, raw, copies, positions, self.clock())

    async def _files(self, record: MessageRecord, options: SendOptions,
                     template_keys: Sequence[str]) -> list[File]:
        refs = [(r.key, r.name) for r in options.attachments]
        refs += [(k, None) for k in template_keys if k not in {key for key, _ in refs}]
        files = []
        for key, name in refs:
            found = await asyncio.to_thread(self.store.get_file, record.account_id, key,
                                            with_data=True)
            if found is None or found.data is None:
                log.warning("message %s: file %s expired before delivery; sent without it",
                            record.id, key)
                continue
            files.append(File(name or found.name, found.content_type, found.data))
        return files

    # --- per recipient (in a thread) -------------------------------------------------------------
    async def render(self, record: MessageRecord, copies: Copies, positions: dict[str, int],
                     account: Account | None, claims: Sequence[Claim], hostname: str,
                     signer: DkimSigner | None) -> list[bytes | Exception]:
        """`render_each` in one of the rendering threads."""
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, self.render_each, record, copies, positions, account, claims,
            hostname, signer)

    def render_each(
        self, record: MessageRecord, copies: Copies, positions: dict[str, int],
        account: Account | None, claims: Sequence[Claim], hostname: str,
        signer: DkimSigner | None,
    ) -> list[bytes | Exception]:
        if copies.error is not None:  # logged once, when it was prepared
            return [copies.error] * len(claims)
        bounce = account.bounce_address if account and copies.tracking.unsubscribe else None
        domain = bounce.rpartition("@")[2] if bounce and "@" in bounce else ""
        out: list[bytes | Exception] = []
        received = received_field(record, hostname)
        for c in claims:
            try:
                mailto = verp.encode(f"unsubscribe@{domain}", c.message_id, c.recipient_id,
                                     self.verp_secret) if domain else None
                copy = copies.render(Recipient(c.address, positions.get(c.address.lower()),
                                               mailto))
                out.append(render_copy(copy, record, hostname, signer, received))
            except Exception as exc:  # a bug in one copy must not hold back the others
                log.exception("message %s: the copy for %s could not be rendered", record.id,
                              c.address)
                out.append(exc)
        return out
