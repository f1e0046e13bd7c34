"""From an attempt's result to what the store records: the "trouble" policy, kept pure.

`Result` is what happened to one recipient (a classified reply or local error). `finish()`
turns it into the store's `Finish`: delivered, deferred until the retry schedule (stretched to a
wait the server asked for), bounced, or failed once the message is older than expire_seconds.
`suppression()` says whether a bounce should suppress the address (only a hard bounce for an
invalid recipient), and `build_dsns()` writes the RFC 3464 notices for recipients that ended
bounced or failed, one per message, to the account's bounce address or else the envelope
sender, and never for a message sent with the null sender (no bounce loops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from postroom.delivery.classify import (
    Category,
    LocalError,
    Outcome,
    OutcomeKind,
    classify_error,
    classify_reply,
)
from postroom.delivery.dsn import FailedRecipient, build_dsn
from postroom.delivery.schedule import retry_delay_for, should_expire
from postroom.model import Account, Claim, MessageRecord, NewMessage, RecipientStatus, new_id
from postroom.smtp.client import (
    AuthenticationFailed,
    ConnectError,
    DeliveryError,
    SessionRefused,
    SmtpTimeout,
    TlsError,
)
from postroom.smtp.replies import Reply
from postroom.store.outbound import Finish

__all__ = [
    "Result",
    "RetryPolicy",
    "build_dsns",
    "error_result",
    "finish",
    "reply_result",
    "suppression",
]

SUPPRESSED_REPLY = "5.7.1 Recipient address is on the account's suppression list; not sent"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float
    cap: float
    expire: float


@dataclass(frozen=True, slots=True)
class Result:
    """One recipient's attempt: the verdict, the text to record, and who said it."""

    claim: Claim
    outcome: Outcome
    reply: str
    remote_host: str | None = None
    suppressed: bool = False


def reply_result(claim: Claim, reply: Reply, remote_host: str | None, *,
                 about_sender: bool = False) -> Result:
    """`about_sender`: the reply refused MAIL FROM, so it says nothing about this address
    (a "553 sender unknown" read as an unknown recipient suppressed every recipient)."""
    outcome = classify_reply(reply)
    if about_sender and outcome.kind is OutcomeKind.BOUNCED:
        category = outcome.category
        if category is Category.INVALID_RECIPIENT:
            category = Category.POLICY_BLOCK
        outcome = Outcome(outcome.kind, False, category, outcome.status)
    return Result(claim, outcome, str(reply), remote_host)


def error_result(
    claim: Claim, error: BaseException | str, *, kind: LocalError | None = None,
    permanent: bool = False, remote_host: str | None = None,
) -> Result:
    """A failure without a usable reply: DNS, refused connection, timeout, TLS, lost session.

    A refusal while opening the session counts as the server's answer only when it is one
    (4xx/5xx): a 2xx there (a second greeting read as the EHLO reply) once recorded mail as
    delivered that was never sent. Rejected smarthost credentials are our configuration's
    fault, not the recipients': they wait for a retry instead of bouncing."""
    if isinstance(error, SessionRefused) and error.reply is not None and kind is None \
            and error.reply.code >= 400 and not isinstance(error, AuthenticationFailed):
        return reply_result(claim, error.reply, remote_host)
    kind = kind or error_kind(error)
    outcome = classify_error(kind, permanent=permanent)
    text = error.text if isinstance(error, DeliveryError) else str(error)
    return Result(claim, outcome, f"{outcome.status} {text}", remote_host)


def error_kind(error: BaseException | str) -> LocalError:
    if isinstance(error, SmtpTimeout):
        return LocalError.TIMEOUT
    if isinstance(error, TlsError):
        return LocalError.TLS
    if isinstance(error, ConnectError | DeliveryError):
        return LocalError.CONNECTION
    return LocalError.CONNECTION


def suppressed_result(claim: Claim) -> Result:
    outcome = Outcome(OutcomeKind.BOUNCED, False, Category.POLICY_BLOCK, "5.7.1")
    return Result(claim, outcome, SUPPRESSED_REPLY, None, suppressed=True)


def finish(result: Result, now: datetime, policy: RetryPolicy) -> Finish:
    claim, outcome = result.claim, result.outcome
    attempt = claim.attempts + 1
    data = {"category": outcome.category.value, "status": outcome.status}
    if result.suppressed:
        return Finish(claim.recipient_id, RecipientStatus.FAILED, result.reply, attempt,
                      data={**data, "suppressed": True})
    if outcome.kind is OutcomeKind.DELIVERED:
        return Finish(claim.recipient_id, RecipientStatus.DELIVERED, result.reply, attempt,
                      result.remote_host, data={"status": outcome.status})
    if outcome.kind is OutcomeKind.BOUNCED:
        return Finish(claim.recipient_id, RecipientStatus.BOUNCED, result.reply, attempt,
                      result.remote_host, data={**data, "hard": outcome.hard})
    if should_expire(claim.due_since, now, policy.expire):
        reply = f"{result.reply} (gave up: still undeliverable after {_age(policy.expire)})"
        return Finish(claim.recipient_id, RecipientStatus.FAILED, reply, attempt,
                      result.remote_host, data={**data, "expired": True})
    delay = retry_delay_for(attempt, result.reply, base=policy.base, cap=policy.cap)
    return Finish(claim.recipient_id, RecipientStatus.DEFERRED, result.reply, attempt,
                  result.remote_host, next_attempt_at=now + timedelta(seconds=delay),
                  data={**data, "retry_in": round(delay, 3)})


def expired_finish(claim: Claim, policy: RetryPolicy) -> Finish:
    """A recipient whose message expired before this attempt even started."""
    reply = f"4.4.7 Message expired: not delivered within {_age(policy.expire)}"
    return Finish(claim.recipient_id, RecipientStatus.FAILED, reply, claim.attempts,
                  data={"category": "expired", "status": "4.4.7", "expired": True})


def deadline_finish(claim: Claim, deadline: datetime) -> Finish:
    """A recipient still undelivered when its message's `deliver_by` deadline passed."""
    reply = f"4.4.7 Delivery deadline passed: not delivered by {deadline.isoformat()}"
    return Finish(claim.recipient_id, RecipientStatus.FAILED, reply, claim.attempts,
                  data={"category": "expired", "status": "4.4.7", "expired": True,
                        "deliver_by": deadline.isoformat()})


def suppression(result: Result) -> tuple[str, str, str] | None:
    """(account_id, address, "bounce") for a hard bounce of an invalid recipient."""
    o = result.outcome
    if o.kind is OutcomeKind.BOUNCED and o.hard and o.category is Category.INVALID_RECIPIENT \
            and not result.suppressed:
        return result.claim.account_id, result.claim.address, "bounce"
    return None


def build_dsns(
    finished: Iterable[tuple[Claim, Finish, str | None]],
    messages: Mapping[str, tuple[MessageRecord, bytes, Account | None]],
    *,
    hostname: str,
    now: datetime,
) -> list[NewMessage]:
    """One DSN per message for its recipients that ended bounced or failed.

    `finished`: (claim, recorded finish, remote host); `messages`: id -> (record, raw, account).
    """
    failed: dict[str, list[FailedRecipient]] = {}
    for claim, fin, remote in finished:
        if fin.status not in (RecipientStatus.BOUNCED, RecipientStatus.FAILED):
            continue
        status = str(fin.data.get("status") or "5.0.0")
        status = "5" + status[1:] if status.startswith("4") else status
        failed.setdefault(claim.message_id, []).append(FailedRecipient(
            address=claim.address, status=status, diagnostic=fin.reply or "",
            remote_mta=remote, last_attempt=now,
        ))
    out = []
    for message_id, recipients in failed.items():
        record, raw, account = messages[message_id]
        if not record.mail_from:  # null sender (a DSN itself): never answer it
            continue
        to = (account.bounce_address if account else None) or record.mail_from
        sender = f"MAILER-DAEMON@{hostname}"
        body = build_dsn(
            reporting_mta=hostname, original_envelope_from=record.mail_from,
            original_message_headers=raw, failed=recipients, to_address=to,
            from_address=sender, arrival_date=record.created_at, date=now,
            original_envelope_id=record.id,
        )
        out.append(NewMessage(
            id=new_id(), account_id=record.account_id, mail_from="", recipients=(to,),
            raw=body, header_from=sender, subject="Undelivered Mail Returned to Sender",
            message_id_header="", source="dsn", options={"dsn_for": record.id},
        ))
    return out


def _age(seconds: float) -> str:
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} seconds"
