"""`RCPT TO:<Postmaster>` against a real `postroom serve` (RFC 5321 §4.5.1: accepted as a path,
any case, no domain). Postroom keeps no mailbox for it: the submission listeners cannot relay a
recipient without a domain, and the inbound listener has nowhere to put it; both answer a 550
that says so, never the 501 of a malformed address."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from support.server import RunningServer, make_server, tls_ctx
from support.smtp_sinks import free_port

pytestmark = pytest.mark.slow

SUBMISSION_ANSWER = (550, b"5.1.1 Recipient <Postmaster> needs a domain to be relayed")
INBOUND_ANSWER = (550, b"5.1.1 No postmaster here")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    inbound = free_port()
    srv = make_server(tmp_path_factory.mktemp("postmaster"),
                      smtp_extra=f'listen_inbound = "127.0.0.1:{inbound}"\n')
    srv.inbound = inbound
    srv.create_account("shop", "--sender-domain", "shop.example",
                       "--trusted-network", "127.0.0.0/8")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("spelling", ["Postmaster", "postmaster", "POSTMASTER"])
def test_submission_answers_postmaster_without_domain_with_550(server: RunningServer,
                                                               spelling: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("client.test")
        assert c.mail("news@shop.example")[0] == 250
        code, text = c.rcpt(f"<{spelling}>")
        assert (code, text) == (SUBMISSION_ANSWER[0],
                                SUBMISSION_ANSWER[1].replace(b"Postmaster", spelling.encode()))
        assert c.rcpt("<pepe>") == (501, b"5.1.7 Bad recipient address <pepe>")
        assert c.rcpt("postmaster@example.org")[0] == 250  # the transaction goes on


def test_submission_after_starttls_and_auth(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.starttls, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=tls_ctx())
        c.ehlo("client.test")
        c.login("apikey", server.keys["shop"])
        assert c.mail("news@shop.example")[0] == 250
        assert c.rcpt("<Postmaster>") == SUBMISSION_ANSWER


def test_inbound_listener_answers_postmaster_with_550(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.inbound, timeout=10) as c:
        c.ehlo("mx.remote.example")
        assert c.mail("someone@remote.example")[0] == 250
        assert c.rcpt("<Postmaster>") == INBOUND_ANSWER
        assert c.rcpt("<pepe>")[0] == 501


def test_null_sender_on_a_submission_port_is_inbound_mail(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("mx.remote.example")
        assert c.mail("<>")[0] == 250
        assert c.rcpt("<Postmaster>") == INBOUND_ANSWER
