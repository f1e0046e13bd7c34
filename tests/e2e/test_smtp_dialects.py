"""Control headers at DATA: parsed into the stored options, stripped, and refused when bad."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator

import httpx
import pytest

from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("dialects"))
    srv.create_account("d", "--sender-domain", "d.example", "--trusted-network", "127.0.0.0/8")
    srv.start()
    yield srv
    srv.stop()


def submit(server: RunningServer, headers: str, rcpts: list[str] | None = None
           ) -> tuple[int, bytes]:
    msg = (f"From: news@d.example\r\nTo: r@example.org\r\n{headers}Subject: s\r\n\r\n"
           "Hello\r\n").encode()
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("x")
        c.mail("news@d.example")
        for r in rcpts or ["r@example.org"]:
            c.rcpt(r)
        return c.data(msg)


def stored(server: RunningServer, text: bytes) -> tuple[dict, bytes]:
    from postroom.store.api import Store

    mid = text.decode().split("<")[1].rstrip(">")
    store = Store(server.storage_url)
    try:
        return store.get_message(mid).options, store.get_raw(mid)
    finally:
        store.close()


def test_options_are_stored_and_control_headers_stripped(server: RunningServer) -> None:
    zoho = json.dumps({"campaign_name": "Spring", "recipient_data": {
        "r@example.org": {"name": "Ann", "merge_data": {"first_name": "Ann"}}}})
    code, text = submit(server, f"X-ZCEA-SMTP-DATA: {zoho}\r\nX-TM-CLIENT-REF: ref-7\r\n"
                                "X-TM-OPEN-TRACK: true\r\nX-IB-Bulk-Id: bulk-1\r\n"
                                "X-Mailgun-Tag: a\r\nX-Mailgun-Tag: b\r\n")
    assert code == 250, text
    options, raw = stored(server, text)
    assert options["campaign_name"] == "Spring" and options["client_reference"] == "ref-7"
    assert options["campaign_id"] == "bulk-1" and options["track_opens"] is True
    assert options["recipient_vars"]["r@example.org"]["first_name"] == "Ann"
    assert sorted(options["tags"]) == ["a", "b"]
    head = raw.split(b"\r\n\r\n")[0].lower()
    for name in (b"x-zcea", b"x-tm-", b"x-ib-", b"x-mailgun"):
        assert name not in head
    assert b"from: news@d.example" in head and raw.endswith(b"Hello\r\n")


def test_malformed_control_header_is_refused_and_nothing_queued(server: RunningServer) -> None:
    before = len(json.loads(server.cli("messages", "list", "--json", "--limit", "1000").stdout))
    code, text = submit(server, "X-SMTPAPI: {not json\r\n")
    assert code == 550 and text.startswith(b"5.6.0 X-SMTPAPI:")
    code, text = submit(server, "X-TM-FILE-KEY: no-such-key\r\n")
    assert code == 550 and text.startswith(b"5.6.0 X-TM-FILE-KEY:")
    code, text = submit(server, "X-Mailgun-Track: maybe\r\n")
    assert code == 550 and b"X-Mailgun-Track" in text
    after = len(json.loads(server.cli("messages", "list", "--json", "--limit", "1000").stdout))
    assert after == before


def test_file_key_from_the_cache_is_accepted_and_send_at_schedules(server: RunningServer) -> None:
    key = server.keys.get("d") or server.create_account("d2", "--sender-domain", "d2.example")
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=10,
                      headers={"Authorization": f"Bearer {server.keys['d']}"}) as c:
        up = c.post("/v1/files", files={"file": ("r.pdf", b"%PDF", "application/pdf")})
        fkey = up.json()["data"]["key"]
    assert key
    code, text = submit(server, f"X-TM-FILE-KEY: {fkey}:report.pdf\r\n"
                                "X-Postroom-Send-At: 2031-01-01T00:00:00Z\r\n")
    assert code == 250, text
    options, _ = stored(server, text)
    assert options["attachments"] == [{"key": fkey, "name": "report.pdf"}]
    mid = text.decode().split("<")[1].rstrip(">")
    assert server.message(mid)["recipients"][0]["status"] == "scheduled"


def test_recipients_added_past_the_limit_are_refused_for_good(server: RunningServer) -> None:
    """X-SMTPAPI `to` over max_recipients is known only at DATA, where a 452 made the client
    retry the same message forever: 550 5.5.3 (found by a review)."""
    many = json.dumps({"to": [f"r{i}@example.org" for i in range(1001)]})
    code, text = submit(server, f"X-SMTPAPI: {many}\r\n")
    assert (code, text) == (550, b"5.5.3 Too many recipients")


def test_a_control_header_after_a_bare_cr_is_still_read(server: RunningServer) -> None:
    """A bare CR starts a line for the header parsers, so the field must be read and stripped
    (it was neither: the test-mode refusal could be dodged; found by a review)."""
    code, text = submit(server, "Comments: a\rX-Mailgun-Drop-Message: yes\r\n")
    assert code == 550 and b"X-Mailgun-Drop-Message" in text, text


def test_the_first_x_smtpapi_header_counts(server: RunningServer) -> None:
    """SendGrid adheres to the first of several X-SMTPAPI headers (it was refused with 550);
    all of them are stripped."""
    code, text = submit(server, 'X-SMTPAPI: {"category": ["first"]}\r\n'
                                'X-SMTPAPI: {"category": ["second"]}\r\n')
    assert code == 250, text
    options, raw = stored(server, text)
    assert options["tags"] == ["first"] and b"X-SMTPAPI" not in raw
