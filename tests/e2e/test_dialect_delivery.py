"""Every dialect end to end: a vendor's documented control headers over real SMTP, delivered by
`postroom serve` through a loopback MX to a real receiver, as per-recipient copies where asked.

Checked on what arrived: personalized Subject/To/parts per recipient, file-cache attachments,
no control header left, tracking links and pixel present or absent as asked, List-Unsubscribe
for bulk mail, a DKIM signature that verifies; and on what was stored: tags, metadata, campaign,
client reference. Then the links themselves: a click redirects and is recorded, a one-click
unsubscribe suppresses the address for the next RCPT.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
from tests.delivery.harness import SENDER_DOMAIN, dns_world, start_server, wait_until

from support.dns_stub import DnsStub
from support.server import RunningServer
from support.smtp_sinks import Received, SmtpSink

pytestmark = pytest.mark.slow

CONTROL = (b"x-zcea-", b"x-tm-", b"x-ib-", b"x-smtpapi", b"x-mailgun-", b"x-pm-", b"x-ses-",
           b"x-postroom-")


@dataclass
class World:
    dns: DnsStub
    sink: SmtpSink
    server: RunningServer
    key: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with dns_world() as dns, SmtpSink() as sink:
        server = start_server(tmp_path_factory.mktemp("dialect-delivery"), dns, sink.port,
                              dkim=True)
        try:
            key = json.loads(server.cli("keys", "create", "--account", "sender", "--json")
                             .stdout)["key"]
            yield World(dns, sink, server, key)
        finally:
            server.stop()


# --- helpers -----------------------------------------------------------------------------------
def message(headers: str, subject: str, text: str, html: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = f"Shop <news@{SENDER_DOMAIN}>"
    m["To"] = f"customers@{SENDER_DOMAIN}"
    m["Subject"] = subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@{SENDER_DOMAIN}>"
    m.set_content(text)
    if html is not None:
        m.add_alternative(html, subtype="html")
    return headers.replace("\n", "\r\n").encode() + m.as_bytes(policy=policy.SMTP)


def submit(world: World, rcpts: list[str], data: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", world.server.plain, timeout=30) as c:
        c.ehlo("tester")
        c.mail(f"news@{SENDER_DOMAIN}")
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(data)
    assert code == 250, text
    return text.decode().split("<")[1].rstrip(">")


def arrived(world: World, rcpts: list[str], timeout: float = 20.0) -> dict[str, Received]:
    """The copy each of `rcpts` received (each in a transaction of its own)."""
    def ready() -> dict[str, Received] | None:
        got = {r: m for m in list(world.sink.messages) for r in m.rcpt_tos if r in rcpts}
        return got if len(got) == len(rcpts) else None

    try:
        return wait_until(ready, timeout, f"copies for {rcpts}", step=0.05)
    except AssertionError:
        raise AssertionError(world.server.log()[-3000:]) from None


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, _class=EmailMessage, policy=policy.default)


def texts(msg: EmailMessage) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in msg.walk()
            if p.get_content_maintype() == "text" and p.get_content_disposition() != "attachment"}


def stored(world: World, mid: str) -> dict[str, Any]:
    from postroom.store.api import Store

    store = Store(world.server.storage_url)
    try:
        return store.get_message(mid).options
    finally:
        store.close()


def check_copy(world: World, got: Received, *, verify: bool = True) -> EmailMessage:
    head = got.data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        assert not line.startswith(CONTROL), line
    if verify:
        assert dkim.verify(got.data, dnsfunc=world.dns.dnsfunc), "DKIM does not verify"
    return parse(got.data)


def tracked(msg: EmailMessage) -> tuple[bool, bool, bool]:
    """(open pixel, tracked HTML link, tracked text link)."""
    parts = texts(msg)
    html, text = parts.get("text/html", ""), parts.get("text/plain", "")
    return "/t/o/" in html, "/t/c/" in html, "/t/c/" in text


def one_click(msg: EmailMessage) -> str:
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return str(msg["List-Unsubscribe"]).split(",")[0].strip(" <>")


HTML = ('<html><body><p>Hello {name}!</p><a href="https://shop.example/sale?a=1&amp;b=2">'
        "Sale</a></body></html>")
TEXT = "Hello {name}! The sale: https://shop.example/sale?a=1&b=2\n"


# --- one test per dialect ----------------------------------------------------------------------
def test_zoho_campaign_merge_data_and_from(world: World) -> None:
    data = {"campaign_name": "Summer is here", "recipient_data": {
        "aaron@rcpt.test": {"name": "Aaron Fletcher", "additional_data": {
            "phone": "+91231241444", "country": "CA"}, "merge_data": {"first_name": "Aaron"}},
        "zoe@rcpt.test": {"name": "Zoë Ñ", "merge_data": {"first_name": "Zoë <3"}}},
        "from": {"address": f"aron@{SENDER_DOMAIN}", "name": "Aron Fletcher"}}
    raw = message(f"X-ZCEA-SMTP-DATA:{json.dumps(data)}\n",
                  "Hi $[first_name|there]$ from $[country|afar]$",
                  TEXT.format(name="$[first_name|Friend]$"),
                  HTML.format(name="$[first_name|Friend]$"))
    rcpts = ["aaron@rcpt.test", "zoe@rcpt.test", "nobody@rcpt.test"]
    mid = submit(world, rcpts, raw)
    got = arrived(world, rcpts)
    aaron, zoe, nobody = (check_copy(world, got[r]) for r in rcpts)
    assert aaron["Subject"] == "Hi Aaron from CA" and zoe["Subject"] == "Hi Zoë <3 from afar"
    assert nobody["Subject"] == "Hi there from afar"
    assert aaron["To"] == "Aaron Fletcher <aaron@rcpt.test>" and zoe["To"] == "Zoë Ñ <zoe@rcpt.test>"
    assert aaron["From"] == f"Aron Fletcher <aron@{SENDER_DOMAIN}>"
    assert texts(zoe)["text/plain"].startswith("Hello Zoë <3!")
    assert "<p>Hello Zoë &lt;3!</p>" in texts(zoe)["text/html"]
    assert "Hello Friend!" in texts(nobody)["text/plain"]
    assert tracked(aaron) == (False, False, False)
    assert one_click(aaron).startswith(world.base + "/u/")  # a campaign is bulk mail
    options = stored(world, mid)
    assert options["campaign_name"] == "Summer is here"
    assert options["recipient_fields"]["aaron@rcpt.test"]["country"] == "CA"


def test_zeptomail_file_keys_open_tracking_client_ref(world: World, tmp_path: Path) -> None:
    with httpx.Client(base_url=world.base, timeout=10,
                      headers={"Authorization": f"Bearer {world.key}"}) as web:
        k1 = web.post("/v1/files", files={"file": ("r.pdf", b"%PDF-1.4", "application/pdf")}
                      ).json()["data"]["key"]
    (tmp_path / "photo.png").write_bytes(b"\x89PNG..")  # and one with `postroom files add`
    k2 = json.loads(world.server.cli("files", "add", str(tmp_path / "photo.png"), "--account",
                                     "sender", "--json").stdout)["key"]
    raw = message(f"X-TM-FILE-KEY: {k1}:report.pdf,{k2}\nX-TM-OPEN-TRACK: true\n"
                  "X-TM-CLICK-TRACK: false\nX-TM-CLIENT-REF: testClientRef\n",
                  "Your report", TEXT.format(name="you"), HTML.format(name="you"))
    mid = submit(world, ["zepto@rcpt.test"], raw)
    msg = check_copy(world, arrived(world, ["zepto@rcpt.test"])["zepto@rcpt.test"])
    files = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in msg.walk()
             if p.get_content_disposition() == "attachment"]
    assert files == [("report.pdf", "application/pdf", b"%PDF-1.4"),
                     ("photo.png", "image/png", b"\x89PNG..")]
    assert tracked(msg) == (True, False, False)  # the pixel, links left alone
    assert msg["List-Unsubscribe"] is None
    options = stored(world, mid)
    assert options["client_reference"] == "testClientRef" and options["track_opens"] is True


def test_infobip_bulk_id_gets_list_unsubscribe(world: World) -> None:
    raw = message("X-IB-Bulk-Id: 1234567890\n"
                  "X-IB-Tracking-Url: http://127.0.0.1:9/email/webhook/server\n"
                  "X-IB-Intermediate-Report: true\n"
                  "X-IB-Notify-Url: http://127.0.0.1:9/email/delivery/server\n"
                  "X-IB-Notify-Content-Type: application/json\n"
                  'X-IB-Callback-Data: [{"id": 1, "desc": "Callback Data Example as JSON"}]\n',
                  "Bulk news", "Plain news.\n")
    rcpts = ["ib1@rcpt.test", "ib2@rcpt.test"]
    mid = submit(world, rcpts, raw)
    got = arrived(world, rcpts)
    urls = {one_click(check_copy(world, got[r])) for r in rcpts}
    assert len(urls) == 2  # one unsubscribe link per recipient
    assert tracked(parse(got["ib1@rcpt.test"].data)) == (False, False, False)
    options = stored(world, mid)
    assert options["campaign_id"] == "1234567890"
    assert options["notify_url"] == "http://127.0.0.1:9/email/delivery/server"
    assert options["callback_data"] == '[{"id": 1, "desc": "Callback Data Example as JSON"}]'


def test_sendgrid_smtpapi_to_sub_category_clicktrack(world: World) -> None:
    api = {"to": ["<ben@rcpt.test>", "john@rcpt.test"], "sub": {"-name-": ["Ben", "John"]},
           "category": ["newsletter"],
           "filters": {"clicktrack": {"settings": {"enable": 1, "enable_text": True}}},
           "send_each_at": [1409348513, 1409348514]}  # the vendor's example: long past
    raw = message(f"X-SMTPAPI: {json.dumps(api)}\n", "Hello -name-",
                  TEXT.format(name="-name-"), HTML.format(name="-name-"))
    mid = submit(world, ["ben@rcpt.test"], raw)  # `to` adds john
    got = arrived(world, ["ben@rcpt.test", "john@rcpt.test"])
    ben, john = check_copy(world, got["ben@rcpt.test"]), check_copy(world, got["john@rcpt.test"])
    assert (ben["Subject"], john["Subject"]) == ("Hello Ben", "Hello John")
    assert texts(john)["text/plain"].startswith("Hello John!")
    assert tracked(ben) == (False, True, True)  # clicktrack, text links too
    assert stored(world, mid)["tags"] == ["newsletter"]


def test_mailgun_recipient_variables_and_html_only_clicks(world: World) -> None:
    variables = {"alice@rcpt.test": {"name": "Alice", "id": 1},
                 "bob@rcpt.test": {"name": "Bob", "id": 2}}
    raw = message("X-Mailgun-Tag: newsletter\nX-Mailgun-Variables: {\"my_message_id\": 123}\n"
                  f"X-Mailgun-Recipient-Variables: {json.dumps(variables)}\n"
                  "X-Mailgun-Track-Clicks: htmlonly\nX-Mailgun-Track-Opens: no\n",
                  "For %recipient.name% (#%recipient.id%)",
                  TEXT.format(name="%recipient.name%"), HTML.format(name="%recipient.name%"))
    mid = submit(world, list(variables), raw)
    got = arrived(world, list(variables))
    alice, bob = (check_copy(world, got[r]) for r in variables)
    assert (alice["Subject"], bob["Subject"]) == ("For Alice (#1)", "For Bob (#2)")
    assert alice["To"] == "alice@rcpt.test"  # batch sending: each sees only itself
    assert "Hello Bob!" in texts(bob)["text/html"]
    assert tracked(alice) == (False, True, False)
    options = stored(world, mid)
    assert options["tags"] == ["newsletter"] and options["metadata"] == {"my_message_id": "123"}


def test_postmark_tag_metadata_opens_and_links(world: World) -> None:
    raw = message("X-PM-Tag: welcome-email\nX-PM-Metadata-color: blue\nX-PM-TrackOpens: true\n"
                  "X-PM-TrackLinks: HtmlAndText\nX-PM-Message-Stream: broadcasts\n",
                  "Welcome", TEXT.format(name="there"), HTML.format(name="there"))
    mid = submit(world, ["pm@rcpt.test"], raw)
    msg = check_copy(world, arrived(world, ["pm@rcpt.test"])["pm@rcpt.test"])
    assert tracked(msg) == (True, True, True)
    options = stored(world, mid)
    assert options["tags"] == ["welcome-email"] and options["metadata"] == {"color": "blue"}
    assert options["message_stream"] == "broadcasts"


def test_ses_configuration_set_tags_and_list_management(world: World) -> None:
    raw = message("X-SES-CONFIGURATION-SET: ConfigSet\n"
                  "X-SES-MESSAGE-TAGS: tagName1=tagValue1, tagName2=tagValue2\n"
                  "X-SES-LIST-MANAGEMENT-OPTIONS: contactListName; topic=topicName\n",
                  "SES news", "Hello.\n")
    mid = submit(world, ["ses@rcpt.test"], raw)
    msg = check_copy(world, arrived(world, ["ses@rcpt.test"])["ses@rcpt.test"])
    assert one_click(msg).startswith(world.base + "/u/")
    options = stored(world, mid)
    assert options["configuration_set"] == "ConfigSet"
    assert options["metadata"] == {"tagName1": "tagValue1", "tagName2": "tagValue2"}


def test_postroom_headers_template_files_variables(world: World) -> None:
    with httpx.Client(base_url=world.base, timeout=10,
                      headers={"Authorization": f"Bearer {world.key}"}) as web:
        fkey = web.post("/v1/files", files={"file": ("inv.pdf", b"%PDF-2", "application/pdf")}
                        ).json()["data"]["key"]
        t = web.post("/v1/templates", json={
            "name": "order", "subject": "Order {{ order }} at {{ shop }}", "missing_policy": "empty",
            "html": '<p>Dear {{ name }}</p><a href="https://shop.example/o/{{ order }}">o</a>',
            "text": "Dear {{ name }}, order {{ order }}."}).json()["data"]
    variables = {"kim@rcpt.test": {"name": "Kim", "order": 42},
                 "lee@rcpt.test": {"name": "Lee & Co", "order": 43}}
    raw = message("X-Postroom-Campaign: spring-2030\nX-Postroom-Tags: newsletter, spring\n"
                  "X-Postroom-Metadata-Order-Id: 42\nX-Postroom-Client-Ref: order-42\n"
                  f"X-Postroom-Variables: {json.dumps(variables)}\n"
                  'X-Postroom-Global-Variables: {"shop": "Corner Books"}\n'
                  "X-Postroom-Track-Opens: yes\nX-Postroom-Track-Clicks: yes\n"
                  f"X-Postroom-Template: {t['id']}\nX-Postroom-Files: {fkey}:invoice.pdf\n"
                  "X-Postroom-Unsubscribe: no\n", "", "ignored body\n")
    mid = submit(world, list(variables), raw)
    got = arrived(world, list(variables))
    kim, lee = (check_copy(world, got[r]) for r in variables)
    assert kim["Subject"] == "Order 42 at Corner Books"
    assert texts(lee)["text/plain"].startswith("Dear Lee & Co, order 43.")
    assert "<p>Dear Lee &amp; Co</p>" in texts(lee)["text/html"]
    assert tracked(kim) == (True, True, False) and kim["List-Unsubscribe"] is None
    assert [(p.get_filename(), p.get_content()) for p in kim.walk()
            if p.get_content_disposition() == "attachment"] == [("invoice.pdf", b"%PDF-2")]
    options = stored(world, mid)
    assert options["campaign_id"] == "spring-2030" and options["client_reference"] == "order-42"
    assert options["tags"] == ["newsletter", "spring"]
    assert options["metadata"] == {"Order-Id": "42"}


def test_identical_copies_share_one_transaction(world: World) -> None:
    raw = message("X-Postroom-Tags: receipts\n", "Receipt", "Thanks.\n")
    rcpts = ["same1@rcpt.test", "same2@rcpt.test"]
    submit(world, rcpts, raw)
    got = arrived(world, rcpts)
    assert got["same1@rcpt.test"] is got["same2@rcpt.test"]
    assert sorted(got["same1@rcpt.test"].rcpt_tos) == rcpts
    check_copy(world, got["same1@rcpt.test"])


# --- the links, used ---------------------------------------------------------------------------
def test_a_delivered_click_link_redirects_and_is_recorded(world: World) -> None:
    raw = message("X-Postroom-Track-Clicks: yes\n", "Click me", "text\n",
                  HTML.format(name="reader"))
    mid = submit(world, ["clicker@rcpt.test"], raw)
    msg = parse(arrived(world, ["clicker@rcpt.test"])["clicker@rcpt.test"].data)
    link = texts(msg)["text/html"].split('href="')[1].split('"')[0]
    assert link.startswith(world.base + "/t/c/")
    with httpx.Client(timeout=10, follow_redirects=False) as web:
        r = web.get(link, headers={"User-Agent": "Mozilla/5.0 (X11; Linux) Firefox/130.0"})
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example/sale?a=1&b=2"

    def clicked() -> list[dict[str, Any]]:
        return [e for e in world.server.message(mid)["events"] if e["type"] == "clicked"]

    [event] = wait_until(clicked, 10, "the clicked event")
    assert event["recipient"] == "clicker@rcpt.test"


def test_one_click_unsubscribe_from_a_delivered_header_suppresses(world: World) -> None:
    raw = message("X-Postroom-Campaign: leaving\n", "Last one", "Bye.\n")
    mid = submit(world, ["leaver@rcpt.test"], raw)
    url = one_click(parse(arrived(world, ["leaver@rcpt.test"])["leaver@rcpt.test"].data))
    with httpx.Client(timeout=10) as web:
        r = web.post(url, content=b"List-Unsubscribe=One-Click",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200

    def refused() -> bool:
        with smtplib.SMTP("127.0.0.1", world.server.plain, timeout=10) as c:
            c.ehlo("tester")
            c.mail(f"news@{SENDER_DOMAIN}")
            code, text = c.rcpt("leaver@rcpt.test")
        return code == 550 and b"5.7.1 Recipient <leaver@rcpt.test> not allowed" in text

    wait_until(refused, 5, "RCPT to the unsubscribed address to be refused", step=0.2)
    assert any(e["type"] == "unsubscribed" for e in world.server.message(mid)["events"])


# --- a campaign ----------------------------------------------------------------------------------
def test_a_1000_recipient_zoho_campaign_arrives_personalized(world: World) -> None:
    n = 1000
    rcpts = [f"c{i}@rcpt.test" for i in range(n)]
    data = {"campaign_name": "Big one", "recipient_data": {
        r: {"name": f"Person {i}", "merge_data": {"first_name": f"P{i}", "code": f"K{i:04d}"}}
        for i, r in enumerate(rcpts)}}
    raw = message(f"X-ZCEA-SMTP-DATA: {json.dumps(data)}\nX-TM-CLICK-TRACK: true\n",
                  "$[first_name]$, your code", "Code $[code|none]$ for $[first_name]$\n",
                  '<p>Code $[code]$</p><a href="https://shop.example/c">use it</a>')
    started = time.monotonic()
    submit(world, rcpts, raw)
    got = arrived(world, rcpts, timeout=45)
    elapsed = time.monotonic() - started
    for i, r in enumerate(rcpts):
        msg = check_copy(world, got[r], verify=i % 100 == 0)  # DKIM verified on a sample
        assert got[r].rcpt_tos == [r]
        assert msg["To"] == f"Person {i} <{r}>" and msg["Subject"] == f"P{i}, your code"
        parts = texts(msg)
        assert parts["text/plain"].startswith(f"Code K{i:04d} for P{i}")
        assert f"<p>Code K{i:04d}</p>" in parts["text/html"] and "/t/c/" in parts["text/html"]
    assert elapsed < 45, elapsed
