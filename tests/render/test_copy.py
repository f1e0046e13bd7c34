"""Per-recipient copies (pure): template → personalize → attachments → From → tracking →
List-Unsubscribe, each copy a well-formed MIME message."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from postroom.model.records import Template
from postroom.render import tokens
from postroom.render.attachments import File
from postroom.render.copy import Copies, Recipient, Tracking, encode_body
from postroom.render.personalize import Substitution
from postroom.render.tracking import CLICK, OPEN, UNSUBSCRIBE, Links

LINKS = Links("https://t.example", b"s" * 32)
ANN, BOB = "ann@example.org", "bob@example.org"
RAW = (
    b"From: Shop <news@shop.example>\r\nTo: customers@shop.example\r\n"
    b"Subject: Hi $[first_name|Friend]$\r\nMessage-ID: <m1@shop.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Hall=F6 $[first_name|Friend]$, see https://shop.example/a\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><body><p>Hi $[first_name|Friend]$</p><a href="https://shop.example/a?x=1&amp;y=2">'
    b"shop</a></body></html>\r\n--b1--\r\n"
)
ZOHO = Substitution("zoho", recipient_vars={ANN: {"first_name": "Zoë <3"}, BOB: {}})


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, _class=EmailMessage, policy=policy.default)


def texts(msg: EmailMessage) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in msg.walk()
            if p.get_content_maintype() == "text"}


def copies(raw: bytes = RAW, **kw: object) -> Copies:
    return Copies(raw, message_id="m1", account_id="acc1", links=LINKS, **kw)  # type: ignore[arg-type]


def test_nothing_asked_sends_the_stored_bytes() -> None:
    c = copies(substitution=Substitution("mailgun", global_vars={"my_message_id": 1}))
    assert not c.per_recipient
    assert c.shared() is RAW and c.render(Recipient(ANN)) is RAW  # placeholders: none used


def test_each_recipient_gets_its_own_subject_to_and_parts() -> None:
    c = copies(substitution=ZOHO, names={ANN: "Zoë Ä"})
    assert c.per_recipient
    ann = parse(c.render(Recipient(ANN)))
    assert ann["Subject"] == "Hi Zoë <3" and ann["To"] == "Zoë Ä <ann@example.org>"
    assert ann["From"] == "Shop <news@shop.example>" and ann["Message-ID"] == "<m1@shop.example>"
    parts = texts(ann)
    assert parts["text/plain"].startswith("Hallö Zoë <3, see https://shop.example/a")
    assert "<p>Hi Zoë &lt;3</p>" in parts["text/html"]
    for p in ann.walk():
        if p.get_content_maintype() == "text":
            assert p.get_content_charset() == "utf-8"
            assert p["Content-Transfer-Encoding"] == "quoted-printable"  # not ASCII any more
    bob = parse(c.render(Recipient(BOB)))
    assert bob["Subject"] == "Hi Friend" and bob["To"] == BOB
    assert texts(bob)["text/plain"].startswith("Hallö Friend")  # still Latin-1 text: QP
    assert "Hi Friend" in texts(bob)["text/html"]
    html_part = next(p for p in bob.walk() if p.get_content_type() == "text/html")
    assert html_part["Content-Transfer-Encoding"] == "7bit"  # ASCII stays readable
    assert b"$[" not in c.render(Recipient(ANN)) + c.render(Recipient(BOB))


def test_values_never_break_a_header() -> None:
    s = Substitution("postroom", recipient_vars={ANN: {"x": "hi\r\nBcc: evil@x.example"}})
    raw = b"From: a@shop.example\r\nSubject: {{ x }}\r\n\r\nbody {{ x }}\r\n"
    out = copies(raw, substitution=s).render(Recipient(ANN))
    msg = parse(out)
    assert msg["Bcc"] is None and msg["Subject"] == "hi Bcc: evil@x.example"
    assert "hi\r\nBcc: evil@x.example" in msg.get_content()  # in the body, a line break is fine


def test_long_and_non_ascii_subjects_are_folded_and_encoded() -> None:
    long = "word " * 30
    s = Substitution("postroom", recipient_vars={ANN: {"x": long}, BOB: {"x": "ünïcödé " * 12}})
    raw = b"From: a@shop.example\r\nSubject: {{ x }}end\r\n\r\nbody\r\n"
    c = copies(raw, substitution=s)
    for who, expected in ((ANN, long + "end"), (BOB, "ünïcödé " * 12 + "end")):
        out = c.render(Recipient(who))
        head = out.split(b"\r\n\r\n")[0]
        assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
        assert head.isascii() and parse(out)["Subject"] == expected.strip()


def test_global_variables_alone_make_one_shared_copy() -> None:
    s = Substitution("postroom", global_vars={"shop": "Corner <Books>"})
    raw = (b"From: a@shop.example\r\nSubject: News from {{ shop }}\r\n"
           b"Content-Type: text/html\r\n\r\n<p>{{ shop }}</p>\r\n")
    c = copies(raw, substitution=s)
    assert not c.per_recipient
    msg = parse(c.shared())
    assert msg["Subject"] == "News from Corner <Books>"
    assert msg.get_content().strip() == "<p>Corner &lt;Books&gt;</p>"
    assert c.render(Recipient(ANN)) == c.render(Recipient(BOB)) == c.shared()


def test_tracking_signs_links_and_the_pixel_per_recipient() -> None:
    c = copies(tracking=Tracking(opens=True, clicks=True))
    assert c.per_recipient
    parts = texts(parse(c.render(Recipient(ANN))))
    html, text = parts["text/html"], parts["text/plain"]
    assert "https://shop.example/a" in text and "/t/c/" not in text  # text links untouched
    href = html.split('href="')[1].split('"')[0]
    assert tokens.verify(LINKS.secret, CLICK, href.rsplit("/", 1)[1]) == {
        "m": "m1", "r": ANN, "u": "https://shop.example/a?x=1&y=2"}
    pixel = html.split('<img src="')[1].split('"')[0]
    assert tokens.verify(LINKS.secret, OPEN, pixel.rsplit("/", 1)[1]) == {"m": "m1", "r": ANN}
    assert html.count("<img") == 1 and html.index("<img") < html.index("</body>")
    text_only = copies(tracking=Tracking(text_clicks=True))
    assert "/t/c/" in texts(parse(text_only.render(Recipient(ANN))))["text/plain"]
    no_links = copies(b"From: a@shop.example\r\nSubject: s\r\n\r\nplain\r\n",
                      tracking=Tracking(opens=True, clicks=True))
    assert not no_links.per_recipient  # nothing to track: copies stay alike


def test_list_unsubscribe_for_each_recipient() -> None:
    c = copies(tracking=Tracking(unsubscribe=True))
    assert c.per_recipient
    out = c.render(Recipient(ANN, mailto="unsubscribe+tok@bounce.example"))
    assert out.endswith(RAW)  # only the two header fields go in front
    msg = parse(out)
    https, mailto = [u.strip(" <>") for u in msg["List-Unsubscribe"].split(",")]
    assert tokens.verify(LINKS.secret, UNSUBSCRIBE, https.rsplit("/", 1)[1]) == {
        "a": "acc1", "m": "m1", "r": ANN}
    assert mailto == "mailto:unsubscribe+tok@bounce.example"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    own = b"List-Unsubscribe: <https://shop.example/u>\r\n" + RAW
    assert copies(own, tracking=Tracking(unsubscribe=True)).render(Recipient(ANN)) == own
    s = Substitution("mailgun", recipient_vars={ANN: {}})
    raw = b"From: a@shop.example\r\nSubject: s\r\n\r\nLeave: %unsubscribe_url%\r\n"
    body = parse(copies(raw, substitution=s, tracking=Tracking(unsubscribe=True))
                 .render(Recipient(ANN))).get_content()
    assert body.startswith("Leave: https://t.example/u/")


def test_template_attachments_and_from_override() -> None:
    template = Template(id="t1", account_id="acc1", name="weekly", subject="<%subject%> weekly",
                        html="<h1>{{ name }}</h1><%body%>", text="{{ name }}: <%body%>",
                        created_at=datetime.now(UTC))
    raw = (b"From: a@shop.example\r\nSubject: News\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
           b"Content-Type: text/plain\r\n\r\nOwn text\r\n--m\r\nContent-Type: text/csv\r\n"
           b"Content-Disposition: attachment; filename=a.csv\r\n\r\n1,2\r\n--m--\r\n")
    s = Substitution("postroom", recipient_vars={ANN: {"name": "<Ann>"}})
    c = copies(raw, substitution=s, template=template, sender=("club@shop.example", "Club"),
               files=[File("r.pdf", "application/pdf", b"%PDF")])
    assert c.header_from == "club@shop.example"
    msg = parse(c.render(Recipient(ANN)))
    assert msg["Subject"] == "News weekly" and msg["From"] == "Club <club@shop.example>"
    parts = texts(msg)
    assert parts["text/html"].startswith("<h1>&lt;Ann&gt;</h1>Own text")
    assert parts["text/plain"].startswith("<Ann>: Own text")
    names = [p.get_filename() for p in msg.walk() if p.get_content_disposition() == "attachment"]
    assert names == ["a.csv", "r.pdf"]


def test_attachments_alone_make_one_shared_copy() -> None:
    c = copies(files=[File("r.pdf", "application/pdf", b"%PDF")])
    assert not c.per_recipient
    msg = parse(c.shared())
    assert [p.get_content_type() for p in msg.get_payload()] == \
        ["multipart/alternative", "application/pdf"]


def test_encode_body_picks_7bit_or_quoted_printable() -> None:
    assert encode_body("a\nb") == (b"a\r\nb\r\n", b"7bit")
    data, cte = encode_body("x" * 1200)
    assert cte == b"quoted-printable" and max(map(len, data.split(b"\r\n"))) <= 76
    data, cte = encode_body("café = 1\r\n")
    assert (data, cte) == (b"caf=C3=A9 =3D 1\r\n", b"quoted-printable")


# --- delivery's side: switches from headers and account, what the store provides ---------------
def test_tracking_switches_follow_the_headers_then_the_account() -> None:
    from postroom.delivery.copies import tracking_switches
    from postroom.dialects import SendOptions
    from postroom.model import Account

    account = Account(id="a", name="a", track_opens=True, track_clicks=True)
    assert tracking_switches(SendOptions(), account) == Tracking(True, True, False, False)
    assert tracking_switches(SendOptions(track_opens=False, track_text_clicks=True), account) \
        == Tracking(False, True, True, False)
    assert tracking_switches(SendOptions(campaign_id="c"), None).unsubscribe
    everywhere = Account(id="a", name="a", list_unsubscribe=True)
    assert tracking_switches(SendOptions(), everywhere).unsubscribe
    assert not tracking_switches(SendOptions(campaign_id="c", unsubscribe=False), everywhere) \
        .unsubscribe


def test_copy_maker_loads_once_and_signs_each_copy() -> None:
    import asyncio

    from postroom.delivery.copies import CopyMaker
    from postroom.dialects import FileRef, SendOptions
    from postroom.model import Account, Claim, MessageRecord
    from postroom.model.records import StoredFile
    from postroom.render.dkim import DkimSigner, generate_key

    now = datetime.now(UTC)
    calls: list[str] = []

    class FakeStore:
        def get_or_create_secret(self, name: str) -> bytes:
            calls.append(f"secret:{name}")
            return LINKS.secret

        def get_file(self, account_id: str, key: str, *, with_data: bool = False
                     ) -> StoredFile | None:
            calls.append(f"file:{key}")
            return StoredFile(key, account_id, "stored.pdf", "application/pdf", 4, now, now,
                              b"%PDF") if key == "k1" else None

        def get_template(self, account_id: str, template_id: str) -> None:
            raise AssertionError("no template was asked for")

    options = SendOptions(campaign_id="c1", recipient_vars={ANN: {"first_name": "Ann"}},
                          substitution_syntax="zoho",
                          attachments=(FileRef("k1", "bill.pdf"), FileRef("gone")))
    record = MessageRecord("m1", "acc1", "news@shop.example", "news@shop.example", "s", "<m1@x>",
                           len(RAW), "smtp", "127.0.0.1", options.to_json(), now, None)
    account = Account(id="acc1", name="a", bounce_address="bounces@bounce.example")
    maker = CopyMaker(FakeStore(), public_url="https://t.example", verp_secret=b"v" * 32)

    async def prepare_twice() -> list[Any]:
        return await asyncio.gather(*(maker.prepare(record, RAW, account) for _ in range(3)))

    results = asyncio.run(prepare_twice())
    assert calls == ["secret:links", "file:k1", "file:gone"]  # once, though asked three times
    copies, positions = results[0]
    assert all(r[0] is copies for r in results) and positions == {}
    assert maker.recent("m1") == (record, RAW) and maker.recent("other") is None
    pem, _ = generate_key("ed25519-sha256")
    claim = Claim(7, "m1", "acc1", "news@shop.example", ANN, "example.org", 0, now, now)
    [out] = maker.render_each(record, copies, positions, account, [claim], "mx.test",
                              DkimSigner("shop.example", "s1", pem, "ed25519-sha256"))
    assert isinstance(out, bytes) and out.startswith(b"Received: ")
    msg = parse(out)
    assert msg["DKIM-Signature"] is not None and msg["Subject"] == "Hi Ann"
    assert "mailto:unsubscribe+m1-7-" in msg["List-Unsubscribe"]
    assert "@bounce.example" in msg["List-Unsubscribe"]
    assert [p.get_filename() for p in msg.walk() if p.get_content_disposition() == "attachment"] \
        == ["bill.pdf"]
