"""SMTP control headers name a template as the docs show (`X-Postroom-Template: welcome-v2`,
`X-Mailgun-Template-Name: welcome`): by its name within the account, or by its id."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import httpx
import pytest

from support.server import RunningServer, make_server, tls_ctx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("template-names"))
    srv.create_account("shop", "--sender-domain", "shop.example")
    srv.start()
    yield srv
    srv.stop()


def _submit(srv: RunningServer, header: str) -> tuple[int, bytes]:
    msg = (f"From: news@shop.example\r\nTo: kim@example.org\r\n{header}\r\n"
           "Subject: ignored\r\n\r\nignored\r\n")
    with smtplib.SMTP("127.0.0.1", srv.starttls, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=tls_ctx())
        c.ehlo("client.test")
        c.login("apikey", srv.keys["shop"])
        c.mail("news@shop.example")
        c.rcpt("kim@example.org")
        return c.data(msg.encode())


def test_template_headers_take_names(server: RunningServer) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=10,
                      headers={"Authorization": f"Bearer {server.keys['shop']}"}) as web:
        for name in ("welcome", "welcome-v2"):
            r = web.post("/v1/templates", json={"name": name, "subject": f"Hi from {name}",
                                                "html": "<p>x</p>"})
            assert r.status_code == 201, r.text
        tid = r.json()["data"]["id"]
    for header in ("X-Postroom-Template: welcome-v2", f"X-Postroom-Template: {tid}",
                   "X-Mailgun-Template-Name: welcome",
                   'X-SMTPAPI: {"filters":{"templates":{"settings":{"enable":1,'
                   '"template_id":"welcome"}}}}'):
        code, text = _submit(server, header)
        assert code == 250, (header, text)
    code, text = _submit(server, "X-Postroom-Template: nosuch")
    assert (code, text) == (550, b"5.6.0 Template nosuch does not exist")
