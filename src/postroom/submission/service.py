"""The submission step shared by SMTP and HTTP: authorize, check, build the record, enqueue.

`SubmissionService` is the SMTP server's `SubmissionHandler`: each method returns the reply for
one command. A 250 for DATA is returned only after `Store.enqueue` has committed the message and
all its recipients (group commit, fsync'd); any failure on the way answers 4xx and the client
keeps the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from postroom.dialects import DialectError, SendOptions
from postroom.dialects.values import show
from postroom.model import Account, NewMessage, new_id
from postroom.smtp import replies as R
from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply, reply
from postroom.smtp.server import Session
from postroom.smtp.spool import Spool
from postroom.store.errors import StorageFull, StoreUnavailable
from postroom.submission import checks, options
from postroom.submission.keys import hash_key
from postroom.submission.message import missing_headers, parse_headers
from postroom.submission.suppressions import SuppressionCache
from postroom.submission.throttle import AuthThrottle

log = logging.getLogger("postroom.submission")

R550_NULL_SENDER = reply(550, "5.7.1", "Sender <> not allowed for submission")
R451_DAILY_LIMIT = reply(451, "4.7.1", "Daily sending limit reached for this account")
R535_CLIENT_IP = reply(535, "5.7.8", "Authentication not allowed from this client address")
R535_SCOPE = reply(535, "5.7.8", "This API key may not send mail")
R550_ONE_FROM = reply(550, "5.7.1", "Message must have exactly one From header address")
R550_BAD_FROM = reply(550, "5.7.1", "Header From must be a single valid mailbox")
R550_TOO_MANY_RCPTS = reply(550, "5.5.3", "Too many recipients")
#: Every RCPT TO of the open transaction, as the client gave it (accepted or refused, repeats
#: included): SendGrid `sub` lists without `to` are by the client's positions, not ours.
RCPTS_GIVEN = "rcpts_given"


class AccountCache:
    """Accounts rarely change; trusted-network lookups read them from memory for `ttl` seconds.

    The answer per client IP is remembered until the next reload: a new connection (one per
    message for many clients) then costs a dict lookup, not a walk over every account's networks.
    """

    def __init__(self, store: Any, ttl: float = 2.0) -> None:
        self.store, self.ttl = store, ttl
        self._accounts: list[Account] = []
        self._loaded = float("-inf")
        self._trusted: dict[str, Account | None] = {}

    async def accounts(self) -> list[Account]:
        if time.monotonic() - self._loaded > self.ttl:
            self._accounts = await asyncio.to_thread(self.store.list_accounts)
            self._loaded = time.monotonic()
            self._trusted = {}
        return self._accounts

    async def trusted_account(self, ip: str) -> Account | None:
        accounts = await self.accounts()
        if ip in self._trusted:
            return self._trusted[ip]
        found = next((a for a in accounts if checks.trusted_from(a, ip)), None)
        if len(self._trusted) < 65536:  # bounded: many distinct clients within one ttl
            self._trusted[ip] = found
        return found


class SubmissionService:
    """Policy for one Postroom process; one instance serves every SMTP connection."""

    def __init__(self, store: Any, *, hostname: str, throttle: AuthThrottle,
                 max_recipients: int = 10000) -> None:
        self.store = store
        self.max_recipients = max_recipients
        self.hostname = hostname
        self.throttle = throttle
        self.accounts = AccountCache(store)
        self.suppressions = SuppressionCache(store)

    # --- SMTP handler --------------------------------------------------------------------------
    async def connection_opened(self, session: Session) -> None:
        account = await self.accounts.trusted_account(session.peer_ip)
        if account is not None:
            session.identity = account
            session.state["trusted"] = True

    async def authenticate(self, session: Session, username: str, password: str) -> Reply:
        ip = session.peer_ip
        attempt = self.throttle.begin(ip)  # before any await: parallel guesses count at once
        if attempt is None:  # over the limit, maybe for lookups still running: wait for one
            attempt = await self.throttle.begin_when_free(ip)
        if attempt is None:
            return R.R454_AUTH_THROTTLED
        try:
            found = await asyncio.to_thread(self.store.find_api_key, hash_key(password))
        except BaseException:  # no verdict reached the client (store trouble, hang-up)
            self.throttle.withdraw(ip, attempt)
            raise
        verdict: Reply | None = None
        if found is None or not checks.username_accepted(found[1], username):
            verdict = R.R535_AUTH_FAILED
        elif checks.ip_allowed(found[1], ip) is not None:
            verdict = R535_CLIENT_IP
        elif "send" not in found[0].scopes:
            verdict = R535_SCOPE
        if verdict is not None:
            pause = self.throttle.failed(ip)
            if pause:
                await asyncio.sleep(pause)
            log.info("auth failed from %s (user %r)", ip, username[:64])
            return verdict
        self.throttle.succeeded(ip, attempt)  # only this attempt: earlier failures stay
        assert found is not None
        session.identity = found[1]
        session.state["key_id"] = found[0].id
        return R.R235_AUTH_OK

    async def mail_from(self, session: Session, path: Path) -> Reply:
        session.state[RCPTS_GIVEN] = []  # a new transaction
        account: Account | None = session.identity
        if account is None:
            return R.R530_AUTH_REQUIRED
        if not path.address:
            return R550_NULL_SENDER
        reason = checks.sender_allowed(account, path.address)
        if reason:
            return R.sender_not_allowed(path.address, reason)
        if account.daily_limit is not None and await self._over_daily_limit(account):
            return R451_DAILY_LIMIT
        return R.sender_ok(path.address)

    async def rcpt_to(self, session: Session, path: Path) -> Reply:
        account: Account = session.identity
        session.state.setdefault(RCPTS_GIVEN, []).append(path.address)
        if "@" not in path.address:  # <Postmaster>, the one path without a domain (RFC 5321)
            return reply(550, "5.1.1", f"Recipient <{path.address}> needs a domain to be relayed")
        if await self.suppressions.suppressed(account.id, path.address):
            return R.recipient_not_allowed(path.address)
        return R.recipient_ok(path.address)

    async def message(self, session: Session, body: Spool) -> Reply:
        account: Account = session.identity
        assert session.mail_from is not None
        try:
            part = await options.split(body)
        except DialectError as exc:
            return options.refusal(exc)
        parsed = parse_headers(part.block)
        problem = self._header_from_problem(account, parsed.header_from, parsed.from_count,
                                            session.mail_from)
        plain = part.options is options.NO_OPTIONS  # no control headers: nothing to check
        if problem is None and not plain:
            problem = await options.problems(self.store, account, part.options)
        if problem is not None:
            return problem
        rcpts = list(dict.fromkeys([*session.recipients, *part.options.extra_recipients]))
        for address in part.options.extra_recipients:
            if await self.suppressions.suppressed(account.id, address):
                rcpts.remove(address)
        if len(rcpts) > self.max_recipients:  # control headers added them: a retry cannot help
            return R550_TOO_MANY_RCPTS
        send_options = part.options
        if send_options.sendgrid_sub and not send_options.recipient_vars:
            given = session.state.get(RCPTS_GIVEN, session.recipients)
            positional = by_client_position(send_options, given, rcpts)
            if isinstance(positional, Reply):
                return positional
            send_options = positional
        if account.daily_limit is not None and await self._over_daily_limit(account):
            return R451_DAILY_LIMIT
        message_id = new_id()
        extra, mid = missing_headers(parsed, message_id, self.hostname)
        not_before, each = options.schedule(part.options)
        record = NewMessage(
            id=message_id,
            account_id=account.id,
            mail_from=session.mail_from,
            recipients=tuple(rcpts),
            raw=extra + part.block + part.rest if part.rest is not None else extra + part.block,
            body_path=None if part.rest is not None else body.path,
            body_offset=part.offset,
            header_from=parsed.header_from,
            subject=parsed.subject,
            message_id_header=mid,
            source="smtp",
            client_ip=session.peer_ip,
            options={} if plain else send_options.to_json(),
            not_before=not_before,
            recipient_not_before=each,
        )
        return await self.enqueue(record)

    # --- shared with the HTTP API --------------------------------------------------------------
    async def enqueue(self, record: NewMessage) -> Reply:
        """Commit the record durably; the reply says whether the client may forget the message."""
        try:
            await self.store.enqueue(record)
        except StorageFull:
            log.error("store full: refused message from %s", record.client_ip)
            return R.R452_STORAGE
        except StoreUnavailable as exc:  # expected trouble (a stuck or lost store): no traceback
            log.error("store unavailable: refused message %s from %s: %s", record.id,
                      record.client_ip, exc)
            return R.R451_INTERNAL
        except Exception:
            log.exception("enqueue failed for message from %s", record.client_ip)
            return R.R451_INTERNAL
        return R.queued(record.id)

    # --- helpers -------------------------------------------------------------------------------
    def _header_from_problem(
        self, account: Account, header_from: str, count: int, envelope_from: str
    ) -> Reply | None:
        if count != 1:
            return R550_ONE_FROM
        if not header_from:  # one From field, but no mailbox every reader would agree on
            return R550_BAD_FROM
        reason = checks.sender_allowed(account, header_from)
        if reason:
            return reply(550, "5.7.1", f"Header From <{header_from}> {reason}")
        reason = checks.aligned(header_from, envelope_from)
        if reason:
            return reply(550, "5.7.1", reason[0].upper() + reason[1:])
        return None

    async def _over_daily_limit(self, account: Account) -> bool:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        count = await asyncio.to_thread(self.store.daily_count, account.id, day)
        return account.daily_limit is not None and count >= account.daily_limit


def by_client_position(options: SendOptions, given: list[str], accepted: list[str]
                       ) -> SendOptions | Reply:
    """SendGrid `sub` without `to`: value i is for the client's i-th recipient (its RCPTs, then
    X-Postroom-Recipients), whatever we refused or merged. Each accepted recipient gets its
    values as its own variables, so delivery needs no positions and a refused RCPT shifts
    nobody's data. Lists of another length are refused: a RCPT the protocol refused before
    policy saw it (bad syntax, no SMTPUTF8) would shift them unseen."""
    order = [*given, *options.extra_recipients]
    for key, values in options.sendgrid_sub.items():
        if len(values) != len(order):
            return reply(550, "5.7.1", f"X-SMTPAPI sub {show(key)} has {len(values)} values "
                         f"for {len(order)} RCPT TO recipients (without to, one per RCPT)")
    wanted = {a.lower() for a in accepted}
    variables: dict[str, dict[str, Any]] = {}
    for i, address in enumerate(order):
        key = address.lower()
        if key in wanted and key not in variables:  # a repeated RCPT keeps its first values
            variables[key] = {k: values[i] for k, values in options.sendgrid_sub.items()}
    return replace(options, recipient_vars=variables)
