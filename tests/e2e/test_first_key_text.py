"""The key printed on first start is an operator (admin) key, and the text says so and tells how
to make a send-only key for applications instead of inviting its use as an SMTP password."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from support.server import make_server

pytestmark = pytest.mark.slow


def test_first_start_presents_an_operator_key(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.start()
    try:
        deadline = time.monotonic() + 10
        while "keys create" not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = srv.log()
    finally:
        srv.stop()
    assert "operator (admin) API key" in log, log
    assert "postroom keys create --account default --scope send" in log, log
    assert "SMTP: user 'apikey', password = the key." not in log  # the old invitation
    [key] = re.findall(r"^  (pr_\S+)$", log, re.MULTILINE)
    listed = srv.cli("keys", "list").stdout
    assert key[:10] in listed and "send,read,admin" in listed, listed
