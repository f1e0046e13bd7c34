"""Mail addressed to Postroom itself: VERP bounces, mailto unsubscribes, ARF complaints.

Recognised at RCPT by the address alone: a VERP return path whose signature verifies names one
recipient of one message (`delivery.verp`); `unsubscribe+<token>@…` with the same token format
unsubscribes that recipient; `[smtp] feedback_address` takes ARF feedback reports (complaints).
Anything else is not ours to accept (no open relay).

Each report is recorded once: a report naming the same address twice, the same report sent
again, and a remote MTA's retry after our 451 (which repeats every recipient of the
transaction, also those already recorded) add no second `bounced` event (per recipient),
`complained` or `unsubscribed` (per message and recipient), nor a second webhook. The store
decides that atomically (`store.inbound.record_async_bounce`, `store.reads.insert_event`), so it
holds across ingress processes too; the service just answers 250 for a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from postroom.delivery import verp
from postroom.events.arf import parse_arf
from postroom.inbound.reports import failures
from postroom.model import EventType
from postroom.smtp import replies as R
from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply, reply
from postroom.smtp.server import Session
from postroom.smtp.spool import Spool

log = logging.getLogger("postroom.inbound")
UNSUBSCRIBE_LOCAL = "unsubscribe"
R550_RELAY = reply(550, "5.7.1", "Relaying denied: authenticate to send mail")
MAX_INBOUND_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "bounce" or "unsubscribe"
    message_id: str
    recipient_id: int


class InboundService:
    def __init__(self, store: Any, *, on_suppressed: Any = None,
                 feedback_address: str | None = None, hostname: str | None = None) -> None:
        self.store = store
        self.feedback_address = (feedback_address or "").lower() or None
        self.hostname = hostname
        self._secret: bytes | None = None
        self.on_suppressed = on_suppressed or (lambda account_id, address: None)

    async def secret(self) -> bytes:
        if self._secret is None:
            self._secret = await asyncio.to_thread(self.store.get_or_create_secret,
                                                   verp.SECRET_NAME)
        return self._secret

    async def target(self, address: str) -> Target | None:
        if self.feedback_address and address.lower() == self.feedback_address:
            return Target("feedback", "", 0)
        decoded = verp.decode(address, await self.secret())
        if decoded is None:
            return None
        base = address.rpartition("@")[0].rpartition("+")[0].lower()
        kind = "unsubscribe" if base == UNSUBSCRIBE_LOCAL else "bounce"
        return Target(kind, decoded[0], decoded[1])

    async def rcpt_to(self, session: Session, path: Path) -> Reply:
        target = await self.target(path.address)
        if target is None:
            return R550_RELAY if "@" in path.address else reply(550, "5.1.1", "No postmaster here")
        targets = session.state.setdefault("inbound_targets", [])
        if target not in targets:  # the same address twice is one report for one recipient
            targets.append(target)
        return R.recipient_ok(path.address)

    async def message(self, session: Session, body: Spool) -> Reply:
        raw = body.getvalue() if body.in_memory else _read(body.path or "")
        for target in session.state.pop("inbound_targets", []):
            try:
                if target.kind == "bounce":
                    await self._bounce(target, raw)
                elif target.kind == "feedback":
                    await self._complaint(raw)
                else:
                    await self._unsubscribe(target, session)
            except Exception:
                log.exception("inbound %s for %s failed", target.kind, target.message_id)
                return R.R451_INTERNAL
        return reply(250, "2.0.0", "Thank you: report processed")

    async def _bounce(self, target: Target, raw: bytes) -> None:
        found = failures(raw)
        if not found:
            log.info("mail to the return path of %s is no bounce; ignored", target.message_id)
            return
        f = found[0]
        text = f"{f.status} {f.diagnostic}".strip()
        result = await asyncio.to_thread(
            self.store.record_async_bounce, target.message_id, target.recipient_id,
            reply=text, hard=f.hard,
            data={"status": f.status, "category": "invalid_recipient" if f.hard else "other"})
        if result is None:
            log.info("bounce for %s recipient %d: no such recipient, or recorded already",
                     target.message_id, target.recipient_id)
        elif f.hard:
            self.on_suppressed(*result)

    async def _complaint(self, raw: bytes) -> None:
        """An ARF report: find the message and recipient, record `complained`, suppress."""
        secret = await self.secret()
        found = parse_arf(raw, verify=lambda a: verp.decode(a, secret), hostname=self.hostname)
        if found is None:
            log.info("mail to the feedback address is no ARF complaint; ignored")
            return
        account_id = address = None
        if found.verified and found.message_id and found.recipient_id is not None:
            pair = await asyncio.to_thread(self.store.recipient_of, found.message_id,
                                           found.recipient_id)
            if pair:
                account_id, address = pair
        elif found.message_id and found.recipient:
            record = await asyncio.to_thread(self.store.get_message, found.message_id)
            if record and any(r.address.lower() == found.recipient.lower()
                              for r in record.recipients):
                account_id, address = record.account_id, found.recipient
        if account_id is None or address is None:
            log.info("complaint matches no message of ours (%s)", found.message_id_header)
            return
        await asyncio.to_thread(self.store.record_complaint, account_id, found.message_id,
                                address, found.data())
        self.on_suppressed(account_id, address)

    async def _unsubscribe(self, target: Target, session: Session) -> None:
        found = await asyncio.to_thread(self.store.recipient_of, target.message_id,
                                        target.recipient_id)
        if found is None:
            return
        account_id, address = found
        await asyncio.to_thread(self.store.add_suppression, account_id, address, "unsubscribe")
        self.on_suppressed(account_id, address)
        await asyncio.to_thread(self.store.append_event, EventType.UNSUBSCRIBED,
                                message_id=target.message_id, recipient=address,
                                data={"method": "mailto", "ip": session.peer_ip})


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_INBOUND_BYTES)
