"""End-to-end delivery setups: a loopback DNS world, a receiving sink and a `postroom serve`.

Mail for `*.rcpt.test` and for the bounce domain goes to MX hosts that resolve to 127.0.0.1,
where the sink listens on `[delivery] mx_port`. Accounts submit from 127.0.0.0/8 without AUTH.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.dns_stub import DnsStub
from support.server import RunningServer, free_port, make_server

SENDER_DOMAIN = "sender.test"
BOUNCE_ADDRESS = "bounces@bounce.test"


def dns_world() -> DnsStub:
    return DnsStub({
        "rcpt.test": {"MX": ["10 mx1.rcpt.test."]},
        "other.test": {"MX": ["10 mx1.rcpt.test."]},
        "bounce.test": {"MX": ["10 mx1.rcpt.test."]},
        "mx1.rcpt.test": {"A": "127.0.0.1"},
        "nullmx.test": {"MX": "0 ."},
    })


def delivery_config(dns: DnsStub, mx_port: int, **extra: Any) -> str:
    values: dict[str, Any] = {
        "enabled": True, "mx_port": mx_port, "nameservers": [dns.address],
        "retry_base_seconds": 0.3, "retry_max_seconds": 600.0, "poll_seconds": 0.1,
        "tls": "off", **extra,
    }
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def start_server(root: Path, dns: DnsStub, mx_port: int, *, bounce: bool = False,
                 dkim: bool = False, storage_url: str | None = None,
                 account: bool = True, feedback: bool = False, **extra: Any) -> RunningServer:
    smtp_extra = ""
    inbound = 0
    if feedback:
        inbound = free_port()
        smtp_extra = (f'feedback_address = "fbl@postroom.test"\n'
                      f'listen_inbound = "127.0.0.1:{inbound}"\n')
    server = make_server(root, storage_url=storage_url, smtp_extra=smtp_extra,
                         delivery=delivery_config(dns, mx_port, **extra))
    server.inbound = inbound
    if account:
        args = ["--sender-domain", SENDER_DOMAIN, "--trusted-network", "127.0.0.0/8"]
        if bounce:
            args += ["--bounce-address", BOUNCE_ADDRESS]
        server.cli("accounts", "create", "sender", *args)
    if dkim:
        out = json.loads(server.cli("domains", "add", SENDER_DOMAIN, "--selector", "s1",
                                    "--json").stdout)
        for record in out["records"]:
            if record["purpose"] == "dkim":
                dns.add(record["name"], "TXT", record["value"])
    server.start()
    return server


def message_bytes(subject: str = "Hello", body: str = "Hi there.\r\n") -> bytes:
    return (f"From: Sender <news@{SENDER_DOMAIN}>\r\nTo: someone@rcpt.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@{SENDER_DOMAIN}>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}").encode()


def submit(server: RunningServer, rcpts: list[str], data: bytes | None = None,
           client: smtplib.SMTP | None = None) -> str:
    """Send one message over SMTP; returns the queued message id."""
    own = client is None
    c = client or smtplib.SMTP("127.0.0.1", server.plain, timeout=10)
    try:
        if own:
            c.ehlo("tester")
        c.mail(f"news@{SENDER_DOMAIN}")
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(data or message_bytes())
        assert code == 250, text
        return text.decode().split("<")[1].rstrip(">")
    finally:
        if own:
            c.quit()


def wait_until(check: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def statuses(server: RunningServer, message_id: str) -> dict[str, str]:
    """Recipient address -> status, read from the store directly (cheaper than the CLI)."""
    from postroom.store.api import Store

    store = Store(server.storage_url)
    try:
        record = store.get_message(message_id)
        return {r.address: r.status.value for r in record.recipients} if record else {}
    finally:
        store.close()


def wait_statuses(server: RunningServer, message_id: str, wanted: dict[str, str],
                  timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the recipients have the wanted statuses; returns `messages show --json`."""
    def done() -> bool:
        got = statuses(server, message_id)
        return all(got.get(a) == s for a, s in wanted.items())

    try:
        wait_until(done, timeout, f"{wanted}")
    except AssertionError:
        raise AssertionError(f"wanted {wanted}, have {statuses(server, message_id)}\n"
                             f"{server.log()[-3000:]}") from None
    return server.message(message_id)
