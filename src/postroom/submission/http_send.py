"""The HTTP door into submission: Zoho send_mail items → checked, composed, durable messages.

Same rules as SMTP (allowed senders, suppression, consent, daily limit) and the same store. Each
item is judged alone, so one bad item does not sink the others; the accepted ones are committed
together in ONE transaction before the answer (a 2xx means durable, as a 250 does on SMTP).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from postroom.model import Account, NewMessage, new_id
from postroom.render.merge import MergeError, render
from postroom.smtp.commands import is_valid_mailbox
from postroom.submission import checks
from postroom.submission.compose import Attachment, Composition, compose

MAX_ITEMS = 500
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
SENT = "Your mail has been sent successfully."
SCHEDULED = "Your mail has been scheduled successfully."


class Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_name: str | None = None
    email: str | None = None
    merge_data: dict[str, Any] | None = None


class FileRef(BaseModel):
    id: str
    content_id: str | None = None
    name: str | None = None


class TemplateRef(BaseModel):
    id: str


class SendMailItem(BaseModel):
    """One mail, in Zoho CRM's send_mail shape plus Postroom's extras (tags, metadata…)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    from_: Person | None = Field(None, alias="from")
    to: list[Person] | None = None
    cc: list[Person] = Field(default_factory=list)
    bcc: list[Person] = Field(default_factory=list)
    reply_to: Person | None = None
    in_reply_to: str | None = None
    scheduled_time: str | None = None
    subject: str | None = None
    content: str | None = None
    mail_format: str = "html"
    attachments: list[FileRef] = Field(default_factory=list)
    template: TemplateRef | None = None
    merge_data: dict[str, Any] = Field(default_factory=dict)
    consent_email: bool = False
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    client_reference: str | None = None
    notify_url: str | None = None
    callback_data: str | None = None


class SendMailRequest(BaseModel):
    data: list[SendMailItem] = Field(min_length=1)


@dataclass
class ItemResult:
    ok: bool
    code: str = "SUCCESS"
    message: str = SENT
    details: dict[str, Any] = field(default_factory=dict)
    messages: list[NewMessage] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message,
                "status": "success" if self.ok else "error"}


class Refused(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def parse_time(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused("INVALID_DATA", "scheduled_time must be ISO 8601 with an offset.",
                      api_name="scheduled_time") from None
    if when.tzinfo is None:
        raise Refused("INVALID_DATA", "scheduled_time needs a UTC offset (e.g. +05:30).",
                      api_name="scheduled_time")
    return when.astimezone(UTC)


class HttpSender:
    """Turns send_mail items into queued messages for one account."""

    def __init__(self, store: Any, *, hostname: str, consent_link: Any = None) -> None:
        self.store, self.hostname = store, hostname
        self.consent_link = consent_link  # callable(account_id, address) -> URL, or None

    async def send(self, account: Account, items: list[SendMailItem], client_ip: str
                   ) -> list[ItemResult]:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        used = await asyncio.to_thread(self.store.daily_count, account.id, day) \
            if account.daily_limit else 0
        everyone = {p.email for item in items for p in (*(item.to or ()), *item.cc, *item.bcc)
                    if p.email}
        # one suppression lookup for the whole request, not one per item
        blocked = await asyncio.to_thread(self.store.suppressed_among, account.id,
                                          sorted(everyone)) if everyone else set()
        results = []
        for item in items:
            try:
                if account.daily_limit is not None and used >= account.daily_limit:
                    raise Refused("LIMIT_EXCEEDED",
                                  "You have exceeded the maximum email limit for the day.",
                                  limit=account.daily_limit)
                result = await self._one(account, item, client_ip, blocked)
                used += len(result.messages)
            except Refused as r:
                result = ItemResult(False, r.code, r.message, r.details)
            results.append(result)
        batch = [m for r in results for m in r.messages]
        await self.store.enqueue_batch(batch)
        return results

    async def _one(self, account: Account, item: SendMailItem, ip: str, blocked: set[str]
                   ) -> ItemResult:
        sender = item.from_
        if sender is None or not sender.email:
            raise Refused("MANDATORY_NOT_FOUND", "The sender's email address is missing.",
                          api_name="from")
        if not item.to:
            raise Refused("MANDATORY_NOT_FOUND", "The recipient's email address is missing.",
                          api_name="to")
        for name, people in (("from", [sender]), ("to", item.to), ("cc", item.cc),
                             ("bcc", item.bcc), ("reply_to", [item.reply_to] if item.reply_to
                                                 else [])):
            for p in people:
                if not p.email or not is_valid_mailbox(p.email):
                    raise Refused("INVALID_DATA", "Malformed email address.", api_name=name,
                                  email=p.email)
        if checks.sender_allowed(account, sender.email):
            raise Refused("INVALID_DATA", "You cannot use this email address to send mails from.",
                          api_name="from", email=sender.email)
        if item.mail_format not in ("html", "text"):
            raise Refused("INVALID_DATA", "mail_format must be html or text.",
                          api_name="mail_format")
        when = parse_time(item.scheduled_time) if item.scheduled_time else None
        everyone = [p.email for p in (*item.to, *item.cc, *item.bcc) if p.email]
        await self._check_recipients(account, everyone, item.consent_email, blocked)
        in_reply_to = await self._reply_target(account, item.in_reply_to)
        subject, content, file_ids, missing = await self._template_fields(account, item)
        attachments = await self._attachments(account, item.attachments, file_ids)
        personal = [p for p in item.to if p.merge_data]
        if personal and (item.cc or item.bcc):
            raise Refused("INVALID_DATA", "cc/bcc cannot be combined with per-recipient merge_data.",
                          api_name="merge_data")
        copies = [[p] for p in item.to] if personal else [list(item.to)]
        options = {"tags": item.tags, "metadata": item.metadata,
                   "client_reference": item.client_reference, "notify_url": item.notify_url,
                   "callback_data": item.callback_data}
        options = {k: v for k, v in options.items() if v}
        messages = []
        for to in copies:
            variables = {**item.merge_data, **(to[0].merge_data or {})} if personal \
                else dict(item.merge_data)
            if item.consent_email and self.consent_link is not None:
                variables.setdefault("ConsentForm", self.consent_link(account.id, to[0].email))
            html = item.mail_format == "html"
            try:
                subj = render(subject, variables, html=False, missing=missing)
                body = render(content, variables, html=html, missing=missing)
            except MergeError as exc:
                raise Refused("INVALID_DATA", f"Template error: {exc}", api_name="template") \
                    from None
            if item.consent_email and "${ConsentForm" in body and self.consent_link:
                body = _replace_consent(body, self.consent_link(account.id, to[0].email))
            mid = new_id()
            header_mid = f"<{mid}@{self.hostname}>"
            comp = Composition(
                from_name=sender.user_name or "", from_email=sender.email,
                to=[(p.user_name or "", p.email or "") for p in to],
                cc=[(p.user_name or "", p.email or "") for p in item.cc],
                reply_to=(item.reply_to.user_name or "", item.reply_to.email or "")
                if item.reply_to else None,
                subject=subj, content=body, mail_format=item.mail_format,
                in_reply_to=in_reply_to, attachments=attachments)
            raw = compose(comp, message_id=header_mid)
            rcpts = [p.email for p in to] + ([p.email for p in (*item.cc, *item.bcc)]
                                             if not personal else [])
            messages.append(NewMessage(
                id=mid, account_id=account.id, mail_from=sender.email,
                recipients=tuple(r for r in rcpts if r), raw=raw, header_from=sender.email,
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

    async def _reply_target(self, account: Account, message_id: str | None) -> str | None:
        if not message_id:
            return None
        found = await asyncio.to_thread(self.store.get_message, message_id)
        if found is None or found.account_id != account.id:
            raise Refused("INVALID_DATA", "in_reply_to names no message of this account.",
                          api_name="in_reply_to", id=message_id)
        return found.message_id_header

    async def _template_fields(self, account: Account, item: SendMailItem
                               ) -> tuple[str, str, list[str], str]:
        if item.template is None:
            return item.subject or "", item.content or "", [], "empty"
        t = await asyncio.to_thread(self.store.get_template, account.id, item.template.id)
        if t is None:
            raise Refused("INVALID_DATA", "Unknown template.", api_name="template",
                          id=item.template.id)
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
            out.append(Attachment(ref.name or f.name, f.content_type, f.data, ref.content_id))
        return out


def _replace_consent(body: str, url: str) -> str:
    import re

    return re.sub(r"\$\{ConsentForm(?:\.[A-Za-z_]+)?\}", url, body)
