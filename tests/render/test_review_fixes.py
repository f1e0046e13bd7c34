"""The per-recipient copy pipeline's review fixes: from SendGrid positions at ingress to
tracking, templates, Jinja, UTF-8 addresses and DKIM, each as the recipient's copy shows it."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import dkim
import pytest

from postroom.delivery.copies import CopyMaker
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.model import Account, Claim, MessageRecord, NewMessage
from postroom.model.records import RecipientRecord, RecipientStatus, Template
from postroom.render import merge, tokens
from postroom.render.attachments import File
from postroom.render.copy import Copies, Recipient, Tracking
from postroom.render.dkim import DkimSigner, generate_key
from postroom.render.personalize import Substitution
from postroom.render.tracking import CLICK, Links, rewrite_html, rewrite_text
from postroom.smtp.client_message import normalise_crlf
from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply
from postroom.smtp.server import Session
from postroom.smtp.spool import Spool
from postroom.submission.service import SubmissionService
from postroom.submission.throttle import AuthThrottle

LINKS = Links("https://t.example", b"s" * 32)
ANN = "ann@example.org"
NOW = datetime.now(UTC)


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, _class=EmailMessage, policy=policy.default)  # type: ignore[return-value]


def texts(msg: EmailMessage) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in msg.walk()
            if p.get_content_maintype() == "text" and p.get_filename() is None}


def copies(raw: bytes, **kw: Any) -> Copies:
    kw.setdefault("links", LINKS)
    return Copies(raw, message_id="m1", account_id="acc1", **kw)


def html_msg(html: str) -> bytes:
    return (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n"
            + html.encode() + b"\r\n")


def click_targets(out: bytes) -> list[str]:
    html = texts(parse(out))["text/html"]
    return [tokens.verify(LINKS.secret, CLICK, t)["u"]  # type: ignore[index]
            for t in re.findall(r"/t/c/([\w\-]+\.[\w\-]+)", html)]


def record(mid: str, options: dict[str, Any], recipients: tuple[str, ...] = ()) -> MessageRecord:
    return MessageRecord(
        mid, "acc", "s@sender.test", "s@sender.test", "s", "<x@sender.test>", 10, "smtp",
        "127.0.0.1", options, NOW, None,
        tuple(RecipientRecord(i, mid, a, a.rpartition("@")[2], RecipientStatus.QUEUED)
              for i, a in enumerate(recipients)))


def claim(rid: int, mid: str, address: str) -> Claim:
    return Claim(rid, mid, "acc", "s@sender.test", address, address.rpartition("@")[2], 0, NOW,
                 NOW + timedelta(minutes=5))


# --- 1. SendGrid `sub` without `to`: the client's RCPT positions -------------------------------
class IngressStore:
    """What SubmissionService and CopyMaker read, and the one message enqueued."""

    def __init__(self, suppressed: set[str]) -> None:
        self.suppressed, self.queued = suppressed, []  # type: ignore[var-annotated]

    def suppressions_since(self, account_id: str, since: Any) -> list[tuple[str, datetime]]:
        return [(a, NOW) for a in self.suppressed]

    async def enqueue(self, message: NewMessage) -> None:
        self.queued.append(message)

    def get_message(self, message_id: str) -> MessageRecord:
        m = self.queued[0]
        return record(m.id, m.options, m.recipients)


SUB_HEAD = (b"From: s@sender.test\r\nTo: list@sender.test\r\nSubject: Statement\r\n"
            b"X-SMTPAPI: %s\r\n\r\nDear -name-, your IBAN is -iban-.\r\n")


def submit(rcpts: list[str], sub: dict[str, list[str]], suppressed: set[str]
           ) -> tuple[Reply, IngressStore]:
    store = IngressStore(suppressed)
    service = SubmissionService(store, hostname="mx.test", throttle=AuthThrottle(5, 60))
    session = Session(peer_ip="127.0.0.1", listener="submission",
                      identity=Account(id="acc", name="a", sender_domains=("sender.test",)))

    async def run() -> Reply:
        assert (await service.mail_from(session, Path("s@sender.test"))).is_positive
        session.mail_from = "s@sender.test"
        for r in rcpts:
            if (await service.rcpt_to(session, Path(r))).is_positive:
                session.recipients.append(r)
        spool = Spool()
        spool.write(SUB_HEAD % json.dumps({"sub": sub}).encode())
        spool.finish()
        return await service.message(session, spool)

    return asyncio.run(run()), store


def delivered(store: IngressStore) -> dict[str, str]:
    m = store.queued[0]
    rec = record(m.id, m.options, m.recipients)
    maker = CopyMaker(store, public_url=None, verp_secret=b"v" * 32)
    made, positions = asyncio.run(maker.prepare(rec, m.raw, None))
    claims = [claim(i, m.id, a) for i, a in enumerate(m.recipients)]
    out = maker.render_each(rec, made, positions, None, claims, "mx.test", None)
    return {c.address: parse(o).get_content().strip() for c, o in zip(claims, out, strict=True)
            if isinstance(o, bytes)}


def test_sendgrid_sub_without_to_follows_the_clients_rcpt_positions() -> None:
    # b is refused (suppressed) and a is given twice: c must still get c's values
    sub = {"-name-": ["Ann", "Bob", "Cem", "Ann again"],
           "-iban-": ["DE11 ANN", "DE22 BOB", "DE33 CEM", "DE44 ANN"]}
    answer, store = submit(["a@rcpt.test", "b@rcpt.test", "c@rcpt.test", "a@rcpt.test"], sub,
                           {"b@rcpt.test"})
    assert answer.code == 250, answer
    assert delivered(store) == {"a@rcpt.test": "Dear Ann, your IBAN is DE11 ANN.",
                                "c@rcpt.test": "Dear Cem, your IBAN is DE33 CEM."}
    assert "DE22 BOB" not in json.dumps(store.queued[0].options["recipient_vars"])


def test_sendgrid_sub_without_to_of_another_length_is_refused() -> None:
    # one value short: a RCPT refused before policy saw it would shift the rest unseen
    answer, store = submit(["a@rcpt.test", "c@rcpt.test"], {"-name-": ["Ann"],
                                                           "-iban-": ["DE11 ANN"]}, set())
    assert answer.code == 550 and answer.enhanced == "5.7.1" and not store.queued
    assert "1 values for 2 RCPT TO recipients" in " ".join(answer.lines)


def test_mail_queued_before_the_fix_uses_stored_positions_only_when_they_fit() -> None:
    from postroom.dialects import SendOptions

    raw = b"From: s@sender.test\r\nSubject: s\r\n\r\nDear -name-.\r\n"

    def bodies(values: list[str], stored: tuple[str, ...]) -> list[str]:
        options = SendOptions(sendgrid_sub={"-name-": tuple(values)},
                              substitution_syntax="sendgrid")
        rec = record("m1", options.to_json(), stored)

        class Store:
            def get_message(self, message_id: str) -> MessageRecord:
                return rec

        maker = CopyMaker(Store(), public_url=None, verp_secret=b"v" * 32)
        made, positions = asyncio.run(maker.prepare(rec, raw, None))
        claims = [claim(i, "m1", a) for i, a in enumerate(stored)]
        return [parse(o).get_content().strip()  # type: ignore[arg-type]
                for o in maker.render_each(rec, made, positions, None, claims, "mx", None)]

    assert bodies(["Ann", "Cem"], ("a@rcpt.test", "c@rcpt.test")) == ["Dear Ann.", "Dear Cem."]
    # b was refused at RCPT: three values for two stored recipients, c is not given Bob's
    assert bodies(["Ann", "Bob", "Cem"], ("a@rcpt.test", "c@rcpt.test")) == ["Dear .", "Dear ."]


# --- 2. templates, From override, and a message that cannot be prepared -----------------------
MIXED = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
         b"--X\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
         b"--X\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf"
         b"\r\n\r\nA\r\n"
         b"--X\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=b.pdf"
         b"\r\n\r\nB\r\n"
         b"--X\r\nContent-Type: application/octet-stream\r\n\r\nC\r\n--X--\r\n")


def test_template_keeps_every_own_attachment_and_parts_without_disposition() -> None:
    t = Template(id="t", account_id="acc1", name="n", subject="", html="<p><%body%></p>",
                 text="Hi\n<%body%>")
    msg = parse(copies(MIXED, template=t).render(Recipient(ANN)))
    assert {k: v.replace("\r\n", "\n") for k, v in texts(msg).items()} \
        == {"text/plain": "Hi\nbody\n", "text/html": "<p>body</p>\n"}
    kept = [(p.get_content_type(), p.get_filename()) for p in msg.iter_attachments()]
    assert kept == [("application/pdf", "a.pdf"), ("application/pdf", "b.pdf"),
                    ("application/octet-stream", None)]


def test_template_keeps_inline_images_next_to_its_html() -> None:
    raw = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/related; boundary=R\r\n\r\n"
           b"--R\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:logo@x\">\r\n"
           b"--R\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--R--\r\n")
    t = Template(id="t", account_id="acc1", name="n", subject="", html="<div>x</div><%body%>",
                 text="x")
    msg = parse(copies(raw, template=t).render(Recipient(ANN)))
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert [p.get_content_type() for p in related.iter_parts()] == ["text/html", "image/png"]
    assert related.get_payload()[1]["Content-ID"] == "<logo@x>"
    assert 'cid:logo@x' in related.get_payload()[0].get_content()


def test_utf8_from_override_is_written_as_it_is() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    out = copies(raw, sender=("zo\u00eb@ex\u00e4mple.de", "Zo\u00eb")).render(Recipient(ANN))
    assert b" <zo\xc3\xab@ex\xc3\xa4mple.de>\r\n" in out  # RFC 6532: the address as it is
    assert parse(out)["From"] == "Zo\u00eb <zo\u00eb@ex\u00e4mple.de>"


def test_a_message_that_cannot_be_prepared_defers_only_its_own_recipients() -> None:
    raw = b"From: s@sender.test\r\nSubject: s\r\n\r\nbody\r\n"

    class Store:
        def get_template(self, account_id: str, template_id: str) -> None:
            raise RuntimeError("template store broken")

    worker = BatchDelivery(store=Store(), domains=None, signers=SignerCache(lambda d: None),  # type: ignore[arg-type]
                           policy=None, hostname="mx.test", verp_secret=b"v" * 32,  # type: ignore[arg-type]
                           deadline=30)
    loaded = {"bad": (record("bad", {"template_id": "t1"}), raw, None),
              "good": (record("good", {}), raw, None)}
    claims = [claim(1, "bad", "r1@rcpt.test"), claim(2, "good", "r2@rcpt.test"),
              claim(3, "bad", "r3@rcpt.test")]
    failed: list[Any] = []

    async def run() -> list[list[str]]:
        return [[c.address for job in jobs for c in job.claims]
                async for jobs in worker._jobs(claims, loaded, failed)]

    assert asyncio.run(run()) == [["r2@rcpt.test"]]
    assert sorted(r.claim.address for r in failed) == ["r1@rcpt.test", "r3@rcpt.test"]


# --- 3. tracking alone never turns placeholders on --------------------------------------------
def test_tracking_does_not_turn_on_jinja() -> None:
    raw = (b"From: a@example.com\r\nSubject: Your {{ order }} report\r\n"
           b"Content-Type: text/html\r\n\r\n<p>{{ total }}</p>\r\n")
    for made in (copies(raw, tracking=Tracking(opens=True)),
                 copies(raw, tracking=Tracking(unsubscribe=True))):
        msg = parse(made.render(Recipient(ANN)))
        assert msg["Subject"] == "Your {{ order }} report"
        assert "<p>{{ total }}</p>" in texts(msg)["text/html"]
    chosen = copies(raw, tracking=Tracking(opens=True), substitution=Substitution(chosen=True))
    assert parse(chosen.render(Recipient(ANN)))["Subject"] == "Your  report"


# --- 4. click tracking ------------------------------------------------------------------------
def test_data_href_is_not_the_link_and_entities_are_decoded() -> None:
    html = ('<a data-href="https://d.example/" href="https://real.example/?a=1&#38;b=2">x</a>'
            '<a href="https://s.example/?c=1&amp;d=2">y</a>')
    out = copies(html_msg(html), tracking=Tracking(clicks=True)).render(Recipient(ANN))
    assert click_targets(out) == ["https://real.example/?a=1&b=2", "https://s.example/?c=1&d=2"]
    assert 'data-href="https://d.example/"' in texts(parse(out))["text/html"]


def test_upper_case_scheme_redirects() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from postroom.api.routes.tracking import router

    out = copies(html_msg('<a href="HTTPS://Shop.Example/sale">x</a>'),
                 tracking=Tracking(clicks=True)).render(Recipient(ANN))

    class Store:
        def list_events(self, message_id: str) -> list[Any]:
            return []

        def append_event(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = FastAPI()
    app.include_router(router)
    app.state.secret, app.state.store = LINKS.secret, Store()
    [path] = re.findall(r"https://t\.example(/t/c/[\w\-]+\.[\w\-]+)", texts(parse(out))["text/html"])
    r = TestClient(app).get(path, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "HTTPS://Shop.Example/sale"
    bad = tokens.sign(LINKS.secret, CLICK, {"m": "m1", "r": ANN, "u": "javascript://x"})
    assert TestClient(app).get(f"/t/c/{bad}", follow_redirects=False).status_code == 404


# --- 5. a UTF-8 recipient in batch sending ----------------------------------------------------
def test_utf8_recipient_in_batch_gets_its_address_as_it_is() -> None:
    rcpt = "j\u00f6rg@ex\u00e4mple.de"
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nHi %recipient.n%\r\n"
    made = copies(raw, substitution=Substitution("mailgun", recipient_vars={rcpt: {"n": "J"}}),
                  names={rcpt: "J\u00f6rg"})
    out = made.render(Recipient(rcpt))
    assert " <j\u00f6rg@ex\u00e4mple.de>\r\n".encode() in out
    msg = parse(out)
    assert msg["To"] == "J\u00f6rg <j\u00f6rg@ex\u00e4mple.de>" and msg.get_content() == "Hi J\r\n"


# --- 6. Jinja: missing nested variables, an immutable sandbox ---------------------------------
def test_missing_nested_variable_renders_empty() -> None:
    raw = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\n"
           b"Hi {{ first }}, plan: {{ acct.plan }}.\r\n")
    s = Substitution(recipient_vars={ANN: {"first": "Ann"}})
    assert texts(parse(copies(raw, substitution=s).render(Recipient(ANN))))["text/plain"] \
        == "Hi Ann, plan: .\r\n"
    with pytest.raises(merge.MergeError):  # "error" still names what is missing
        merge.render("{{ acct.plan }}", {}, html=False, missing="error")


def test_a_template_cannot_change_what_other_recipients_are_rendered_with() -> None:
    seen: list[str] = []
    with pytest.raises(merge.MergeError):
        merge.render("{% set _ = seen.append(n) %}{{ n }}", {"seen": seen, "n": "Ann"},
                     html=False, missing="empty")
    assert seen == []
    with pytest.raises(merge.MergeError):  # the resource bounds are still there
        merge.render("{{ 7 ** 3000000 }}", {}, html=False, missing="empty")


# --- 7. attached messages and files shown inline are left alone -------------------------------
def test_attached_message_and_inline_text_file_are_not_edited() -> None:
    forwarded = (b"From: b@corp.example\r\nContent-Type: text/html\r\n\r\n"
                 b"<body><a href=\"https://corp.example/\">x</a> {{ x }}</body>\r\n")
    notes = b"see https://notes.example/ {{ x }}\r\n"
    raw = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=M\r\n\r\n"
           b"--M\r\nContent-Type: text/html\r\n\r\n<body>FYI {{ x }}</body>\r\n"
           b"--M\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
           + forwarded + b"--M\r\nContent-Type: text/plain\r\n"
           b"Content-Disposition: inline; filename=notes.txt\r\n\r\n" + notes + b"--M--\r\n")
    made = copies(raw, tracking=Tracking(opens=True, clicks=True, text_clicks=True),
                  substitution=Substitution(global_vars={"x": "X"}))
    out = made.render(Recipient(ANN))
    assert forwarded in out and notes in out
    assert out.count(b"/t/o/") == 1 and b"FYI X" in out


# --- 9. attachments, text links, the pixel, our own links -------------------------------------
def test_text_attachment_keeps_its_charset() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    out = copies(raw, files=[File("n.txt", 'text/plain; charset="utf-8"; name=x',
                                  "h\u00e9llo".encode())]).render(Recipient(ANN))
    [part] = parse(out).iter_attachments()
    assert part.get_content() == "h\u00e9llo" and part.get_filename() == "n.txt"


def test_text_urls_leave_sentence_punctuation_outside() -> None:
    out = rewrite_text("See https://s.example/sale. Or https://s.example/b, ok? https://s.example/c!",
                       lambda u: f"[{u}]")
    assert out == "See [https://s.example/sale]. Or [https://s.example/b], ok? [https://s.example/c]!"


def test_pixel_goes_before_html_end_without_a_body_end() -> None:
    assert rewrite_html("<html><p>x</p></html>", None, "P").endswith('"></html>')
    assert rewrite_html("<html><p>x</p></HTML >\n", None, "P").startswith("<html><p>x</p><img")
    assert rewrite_html("<p>x</p>", None, "P").startswith("<p>x</p><img")


def test_our_own_links_are_ours_by_host_and_path_not_by_prefix() -> None:
    out = copies(html_msg('<a href="https://t.example.org/x">x</a>'),
                 tracking=Tracking(clicks=True)).render(Recipient(ANN))
    assert click_targets(out) == ["https://t.example.org/x"]
    links = Links("https://t.example/track", b"s" * 32)
    assert links.owns("https://T.example:443/track/u/x") and links.owns("https://t.example/track")
    for other in ("https://t.example.org/track/u/x", "https://t.example/tracker",
                  "http://t.example/track/u", "https://t.example:8443/track/u",
                  "https://t.example:bad/track"):
        assert not links.owns(other), other


# --- 11. DKIM over the line ends that go on the wire ------------------------------------------
def test_dkim_survives_crlf_normalisation_on_the_wire() -> None:
    pem, txt = generate_key("ed25519-sha256")
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nline1\rline2\nline3\r\n"
    signed = DkimSigner("example.com", "sel", pem, "ed25519-sha256").sign(raw) + raw

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return txt.encode()

    assert dkim.verify(normalise_crlf(signed), dnsfunc=dnsfunc)
