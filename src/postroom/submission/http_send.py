"""The HTTP door into submission: Zoho send_mail items → checked, composed, durable messages.

Same rules as SMTP (allowed senders, suppression, consent, daily limit) and the same store. Each
item is judged alone, so one bad item does not sink the others; the accepted ones are committed
together in ONE transaction before the answer (a 2xx means durable, as a 250 does on SMTP).
Per item only what the item uses is awaited (templates, files, replies, consent), and what
repeats inside a request (address syntax, sender checks) is judged once: a 100-item request
is mostly one content sent to many people.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from postroom.model import Account, NewMessage, new_id
from postroom.render.merge import MergeError, render
from postroom.smtp.commands import is_valid_mailbox
from postroom.submission import checks
from postroom.submission.compose import Attachment, Composition, compose
from postroom.submission.http_items import (
    MAX_ATTACHMENT_BYTES,
    SCHEDULED,
    SENT,
    FileRef,
    ItemResult,
    Person,
    Refused,
    SendMailItem,
    parse_time,
)
from postroom.submission.http_templates import find_template

_CONSENT_FORM = re.compile(r"\$\{ConsentForm(?:\.[A-Za-z_]+)?\}")
#: What a name or file name may not hold: control characters (CR and LF would start a header
#: of the sender's choosing) and lone surrogates (not encodable).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


#: What a subject may not hold: the same, less tab, CR and LF (folded to spaces when composed).
_BAD_IN_SUBJECT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _printable(text: str) -> bool:
    return _UNPRINTABLE.search(text) is None


class _Memo:
    """Answers that repeat within one request: address syntax and allowed senders."""

    def __init__(self, account: Account, now: datetime) -> None:
        self.account, self.now = account, now  # `now`: every message's Date header
        self.valid: dict[str, bool] = {}
        self.refused_senders: dict[str, bool] = {}

    def check(self, name: str, people: list[Person]) -> None:
        for p in people:
            email = p.email
            ok = self.valid.get(email) if email else False
            if ok is None:
                ok = self.valid[email] = is_valid_mailbox(email)  # type: ignore[arg-type]
            if not ok:
                raise Refused("INVALID_DATA", "Malformed email address.", api_name=name,
                              email=email)
            if p.user_name and not _printable(p.user_name):
                raise Refused("INVALID_DATA", "A name may not contain control characters.",
                              api_name=name, email=email)

    def sender_refused(self, address: str) -> bool:
        refused = self.refused_senders.get(address)
        if refused is None:
            refused = self.refused_senders[address] = bool(
                checks.sender_allowed(self.account, address))
        return refused


class HttpSender:
    """Turns send_mail items into queued messages for one account."""

    def __init__(self, store: Any, *, hostname: str, consent_link: Any = None,
                 suppressions: Any = None, max_recipients: int = 1000,
                 max_message_size: int = 20 << 20) -> None:
        """`max_recipients`, `max_message_size`: the SMTP listeners' limits (`[smtp]`),
        which a composed message must meet as a submitted one does."""
        self.store, self.hostname = store, hostname
        self.max_recipients, self.max_message_size = max_recipients, max_message_size
        self.consent_link = consent_link  # callable(account_id, address) -> URL, or None
        self.suppressions = suppressions  # a SuppressionCache, or None to ask the store

    async def send(self, account: Account, items: list[SendMailItem], client_ip: str
                   ) -> list[ItemResult]:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        used = await asyncio.to_thread(self.store.daily_count, account.id, day) \
            if account.daily_limit else 0
        everyone = {p.email for item in items for p in (*(item.to or ()), *item.cc, *item.bcc)
                    if p.email}
        blocked = await self._suppressed(account.id, everyone)
        memo = _Memo(account, datetime.now(UTC))
        results = []
        for item in items:
            try:
                if account.daily_limit is not None and used >= account.daily_limit:
                    raise Refused("LIMIT_EXCEEDED",
                                  "You have exceeded the maximum email limit for the day.",
                                  limit=account.daily_limit)
                result = await self._one(account, item, client_ip, blocked, memo)
                if account.daily_limit is not None \
                        and used + len(result.messages) > account.daily_limit:
                    raise Refused("LIMIT_EXCEEDED",
                                  "You have exceeded the maximum email limit for the day.",
                                  limit=account.daily_limit)
                used += len(result.messages)
            except Refused as r:
                result = ItemResult(False, r.code, r.message, r.details)
            results.append(result)
        batch = [m for r in results for m in r.messages]
        await self.store.enqueue_batch(batch)
        return results

    async def _suppressed(self, account_id: str, addresses: set[str]) -> set[str]:
        """The request's suppressed addresses: one look at the in-memory view (or the store)."""
        if not addresses:
            return set()
        if self.suppressions is None:
            return await asyncio.to_thread(self.store.suppressed_among, account_id,
                                           sorted(addresses))
        return {a for a in addresses if await self.suppressions.suppressed(account_id, a)}

    async def _one(self, account: Account, item: SendMailItem, ip: str, blocked: set[str],
                   memo: _Memo) -> ItemResult:
        sender = item.from_
        if sender is None or not sender.email:
            raise Refused("MANDATORY_NOT_FOUND", "The sender's email address is missing.",
                          api_name="from")
        if not item.to:
            raise Refused("MANDATORY_NOT_FOUND", "The recipient's email address is missing.",
                          api_name="to")
        memo.check("from", [sender])
        memo.check("to", item.to)
        if item.cc:
            memo.check("cc", item.cc)
        if item.bcc:
            memo.check("bcc", item.bcc)
        if item.reply_to:
            memo.check("reply_to", [item.reply_to])
        if memo.sender_refused(sender.email):
            raise Refused("INVALID_DATA", "You cannot use this email address to send mails from.",
                          api_name="from", email=sender.email)
        if item.mail_format not in ("html", "text"):
            raise Refused("INVALID_DATA", "mail_format must be html or text.",
                          api_name="mail_format")
        when = parse_time(item.scheduled_time) if item.scheduled_time else None
        if account.require_consent or blocked:
            everyone = [p.email for p in (*item.to, *item.cc, *item.bcc) if p.email]
            if account.require_consent or not blocked.isdisjoint(everyone):
                await self._check_recipients(account, everyone, item.consent_email, blocked)
        in_reply_to = await self._reply_target(account, item.in_reply_to) \
            if item.in_reply_to else None
        if item.template is None:
            subject, content, file_ids, missing = item.subject or "", item.content or "", [], \
                "empty"
        else:
            subject, content, file_ids, missing = await self._template_fields(account, item)
        if item.consent_email and account.require_consent and not _CONSENT_FORM.search(content):
            # without the form, consent_email would be a way around require_consent
            raise Refused("INVALID_DATA", "A consent email must contain ${ConsentForm}.",
                          api_name="content")
        attachments = await self._attachments(account, item.attachments, file_ids) \
            if item.attachments or file_ids else []
        personal = [p for p in item.to if p.merge_data]
        if personal and (item.cc or item.bcc):
            raise Refused("INVALID_DATA", "cc/bcc cannot be combined with per-recipient merge_data.",
                          api_name="merge_data")
        if item.consent_email and (item.cc or item.bcc):  # the form names its one reader
            raise Refused("INVALID_DATA", "cc/bcc cannot be combined with consent_email.",
                          api_name="consent_email")
        one_each = bool(personal) or bool(item.consent_email)
        templated = item.template is not None or bool(item.merge_data) or bool(personal)
        copies = [[p] for p in item.to] if one_each else [list(item.to)]
        size = 1 if one_each else len(item.to) + len(item.cc) + len(item.bcc)
        if size > self.max_recipients:
            raise Refused("INVALID_DATA", "Too many recipients in one message.",
                          api_name="to", maximum=self.max_recipients)
        options = {"tags": item.tags, "metadata": item.metadata,
                   "client_reference": item.client_reference, "notify_url": item.notify_url,
                   "callback_data": item.callback_data}
        options = {k: v for k, v in options.items() if v}
        options.update({k: v for k, v in (("track_opens", item.track_opens),
                                           ("track_clicks", item.track_clicks)) if v is not None})
        html = item.mail_format == "html"
        cc = [(p.user_name or "", p.email or "") for p in item.cc]
        reply_to = (item.reply_to.user_name or "", item.reply_to.email or "") \
            if item.reply_to else None
        messages = []
        for to in copies:
            variables = {**item.merge_data, **(to[0].merge_data or {})} if one_each \
                else dict(item.merge_data)
            if item.consent_email and self.consent_link is not None:
                variables.setdefault("ConsentForm", self.consent_link(account.id, to[0].email))
            if templated:
                try:
                    subj = render(subject, variables, html=False, missing=missing)
                    body = render(content, variables, html=html, missing=missing)
                except MergeError as exc:
                    raise Refused("INVALID_DATA", f"Template error: {exc}",
                                  api_name="template") from None
            else:  # plain fields are text, as Zoho sends them: `{{ code }}` stays as written
                subj, body = subject, content
            if _BAD_IN_SUBJECT.search(subj):  # NUL: PostgreSQL refuses the whole commit
                raise Refused("INVALID_DATA", "A subject may not contain control characters.",
                              api_name="subject")
            if item.consent_email and "${ConsentForm" in body and self.consent_link:
                body = _CONSENT_FORM.sub(self.consent_link(account.id, to[0].email), body)
            mid = new_id()
            header_mid = f"<{mid}@{self.hostname}>"
            comp = Composition(
                from_name=sender.user_name or "", from_email=sender.email,
                to=[(p.user_name or "", p.email or "") for p in to], cc=cc, reply_to=reply_to,
                subject=subj, content=body, mail_format=item.mail_format,
                in_reply_to=in_reply_to, attachments=attachments)
            try:
                raw = compose(comp, message_id=header_mid, date=memo.now)
            except (ValueError, UnicodeError) as exc:  # what the checks above did not foresee
                raise Refused("INVALID_DATA", f"The message cannot be composed: {exc}") from None
            if len(raw) > self.max_message_size:
                raise Refused("INVALID_DATA", "Message exceeds the maximum message size.",
                              maximum=self.max_message_size)
            rcpts = [p.email for p in to] + ([p.email for p in (*item.cc, *item.bcc)]
                                             if not one_each else [])
            messages.append(NewMessage(  # every address was checked non-empty above
                id=mid, account_id=account.id, mail_from=sender.email,
                recipients=tuple(rcpts), raw=raw, header_from=sender.email,
                subject=subj, message_id_header=header_mid, source="http", client_ip=ip,
                options=options, not_before=when))
        scheduled = when is not None and when > datetime.now(UTC)
        details: dict[str, Any] = {"message_id": messages[0].id}
        if len(messages) > 1:
            details["message_ids"] = [m.id for m in messages]
        return ItemResult(True, "SUCCESS", SCHEDULED if scheduled else SENT, details, messages)

    async def _check_recipients(self, account: Account, addresses: list[str],
                                consent_mail: bool, suppressed: set[str]) -> None:
        blocked = {a for a in addresses if a in suppressed}
        if blocked:
            first = sorted(blocked)[0]
            row = await asyncio.to_thread(self.store.suppression_for, account.id, first)
            raise Refused("NOT_ALLOWED",
                          "The recipient's address is blocked (bounced, unsubscribed or opted out).",
                          email=first, reason=row["reason"] if row else "suppressed")
        if account.require_consent and not consent_mail:
            ok = await asyncio.to_thread(self.store.consented_among, account.id, addresses)
            for a in addresses:
                if a not in ok:
                    raise Refused("NOT_ALLOWED",
                                  "The intended receiver has not consented to receive your email.",
                                  email=a, reason="no_consent")

    async def _reply_target(self, account: Account, message_id: str) -> str | None:
        found = await asyncio.to_thread(self.store.get_message, message_id)
        if found is None or found.account_id != account.id:
            raise Refused("INVALID_DATA", "in_reply_to names no message of this account.",
                          api_name="in_reply_to", id=message_id)
        return found.message_id_header

    async def _template_fields(self, account: Account, item: SendMailItem
                               ) -> tuple[str, str, list[str], str]:
        assert item.template is not None
        t, problem, details = await find_template(self.store, account.id, item.template.id)
        if t is None:
            raise Refused("INVALID_DATA", problem, api_name="template", **details)
        content = item.content if item.content is not None else (
            t.html if item.mail_format == "html" else (t.text or t.html))
        subject = item.subject if item.subject is not None else t.subject
        files = [] if item.attachments else list(t.attachments)
        return subject, content, files, t.missing_policy

    async def _attachments(self, account: Account, refs: list[FileRef], extra: list[str]
                           ) -> list[Attachment]:
        out, total = [], 0
        for ref in [*refs, *(FileRef(id=k) for k in extra)]:
            f = await asyncio.to_thread(self.store.get_file, account.id, ref.id, with_data=True)
            if f is None or f.data is None:
                raise Refused("INVALID_DATA", "Unknown or expired attachment id.",
                              api_name="attachments", id=ref.id)
            total += f.size
            if total > MAX_ATTACHMENT_BYTES:
                raise Refused("FILE_SIZE_EXCEEDS",
                              "The total size of the attachments has exceeded 10 MB.",
                              api_name="attachments")
            name = ref.name or f.name
            if not _printable(name) or (ref.content_id and not _printable(ref.content_id)):
                raise Refused("INVALID_DATA", "A file name or content id may not contain "
                              "control characters.", api_name="attachments", id=ref.id)
            out.append(Attachment(name, f.content_type, f.data, ref.content_id))
        return out
