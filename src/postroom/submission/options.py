"""Provider control headers at DATA: parse them into `SendOptions`, strip them, check them.

A malformed control header, an unknown file-cache key or template, or a `from` override the
account may not use refuses the message with a reply naming the header; nothing is queued. The
header block is the only part read: a 20 MB body stays in its spool file (`body_offset` says
where the untouched rest begins).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from postroom.dialects import DialectError, SendOptions, extract
from postroom.model import Account
from postroom.smtp.commands import is_valid_mailbox
from postroom.smtp.replies import Reply, reply
from postroom.smtp.spool import Spool
from postroom.submission import checks
from postroom.submission.message import header_block

MAX_HEADER_BLOCK = 8 << 20  # a 10,000-recipient Zoho header is about 2 MB
_CONTROL = re.compile(rb"(?im)(?:^|\r)x-")  # a bare CR starts a line for the parsers too
NO_OPTIONS = SendOptions()  # shared (frozen): building its ~35 fields per message showed in profiles


@dataclass(slots=True)
class Split:
    block: bytes  # the header block, control headers removed
    rest: bytes | None  # the body, when the message is in memory
    offset: int  # where the body starts in the spool file (spooled messages)
    options: SendOptions


def _read_block(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_HEADER_BLOCK)
    return header_block(data)


async def split(body: Spool) -> Split:
    """Raises DialectError for a malformed control header."""
    if body.in_memory:
        data = body.getvalue()
        block = header_block(data)
        rest: bytes | None = data[len(block):]
    else:
        block = header_block(body.head())
        if len(block) == len(body.head()):  # the header block is longer than the head
            block = await asyncio.to_thread(_read_block, body.path or "")
        rest = None
    if not _CONTROL.search(block):
        return Split(block, rest, len(block), NO_OPTIONS)
    options, stripped = extract(block)
    return Split(stripped, rest, len(block), options)


def refusal(error: DialectError) -> Reply:
    return reply(550, "5.6.0", str(error).replace("\r", " ").replace("\n", " ")[:400])


async def problems(store: Any, account: Account, options: SendOptions) -> Reply | None:
    """What the options ask for must exist and be allowed for the account."""
    for ref in options.attachments:
        found = await asyncio.to_thread(store.get_file, account.id, ref.key)
        if found is None:
            return reply(550, "5.6.0", f"X-TM-FILE-KEY: unknown or expired file key {ref.key[:80]}")
    if options.template_id:
        found = await asyncio.to_thread(store.get_template, account.id, options.template_id)
        if found is None:
            return reply(550, "5.6.0", f"Template {options.template_id[:80]} does not exist")
    if options.from_override is not None and \
            checks.sender_allowed(account, options.from_override.address):
        return reply(550, "5.7.1",
                         f"From <{options.from_override.address}> not allowed for this account")
    for address in options.extra_recipients:
        if not is_valid_mailbox(address):
            return reply(550, "5.6.0", f"X-SMTPAPI: bad recipient address <{address[:200]}>")
    return None


def schedule(options: SendOptions) -> tuple[datetime | None, dict[str, datetime]]:
    """(message not_before, per-recipient not_before) from send_at / send_each_at."""
    if options.send_at is None and not options.send_each_at:
        return None, {}
    now = datetime.now(UTC)
    when = options.send_at if options.send_at and options.send_at > now else None
    each = {k.lower(): v for k, v in options.send_each_at.items() if v > now}
    return when, each
