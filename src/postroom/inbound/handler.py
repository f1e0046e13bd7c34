"""The SMTP handler `runtime` installs: submission for senders, inbound for mail to Postroom.

MAIL FROM:<> (bounces and reports use the null sender) and every MAIL on the dedicated inbound
listener start an inbound transaction whose recipients must be Postroom's own addresses. Every other unauthenticated MAIL is answered `530 5.7.0 Authentication required`.
"""

from __future__ import annotations

from postroom.inbound.service import InboundService
from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply
from postroom.smtp.server import Session
from postroom.smtp.spool import Spool
from postroom.submission.service import SubmissionService

INBOUND_LISTENER = "inbound"


class IngressHandler:
    def __init__(self, submission: SubmissionService, inbound: InboundService) -> None:
        self.submission, self.inbound = submission, inbound

    @staticmethod
    def _inbound(session: Session) -> bool:
        return bool(session.state.get("inbound_mode"))

    async def connection_opened(self, session: Session) -> None:
        await self.submission.connection_opened(session)

    async def authenticate(self, session: Session, username: str, password: str) -> Reply:
        return await self.submission.authenticate(session, username, password)

    async def mail_from(self, session: Session, path: Path) -> Reply:
        # Submission never takes the null sender, so MAIL FROM:<> always means "a report for
        # Postroom", whoever sends it; the inbound listener takes nothing but such mail.
        session.state["inbound_mode"] = path.address == "" or session.listener == INBOUND_LISTENER
        session.state.pop("inbound_targets", None)
        if self._inbound(session):
            from postroom.smtp import replies as R

            return R.sender_ok(path.address)
        return await self.submission.mail_from(session, path)

    async def rcpt_to(self, session: Session, path: Path) -> Reply:
        if self._inbound(session):
            return await self.inbound.rcpt_to(session, path)
        return await self.submission.rcpt_to(session, path)

    async def message(self, session: Session, body: Spool) -> Reply:
        if self._inbound(session):
            return await self.inbound.message(session, body)
        return await self.submission.message(session, body)
