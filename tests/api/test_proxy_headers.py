"""X-Forwarded-For is believed only from `[http] trusted_proxies`. uvicorn's default believed it
from any 127.0.0.1 peer, so a local client could pick the address that the accounts' IP allow
lists and the sign-in throttle see. Real requests over loopback, served as `postroom serve`
serves them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.admin import accounts as admin_accounts
from postroom.config.settings import Settings
from postroom.store.api import Store

from .live import serving


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'postroom.db'}")
    yield s
    s.close()


def key_for(store: Store, name: str, allow_ips: list[str]) -> str:
    account = admin_accounts.create_account(store, name, sender_domains=[f"{name}.example"],
                                            sender_addresses=[], allow_ips=allow_ips)
    return admin_accounts.create_key(store, account.id, scopes=["send", "read"])[1]


def ping(port: int, key: str, forwarded_for: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/v1/ping", timeout=10,
                     headers={"Authorization": f"Bearer {key}",
                              "X-Forwarded-For": forwarded_for})


def test_by_default_the_peer_is_the_client_whatever_it_forwards(tmp_path: Path, store: Store
                                                                ) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.http.trusted_proxies == []
    outside = key_for(store, "outside", ["203.0.113.7"])
    local = key_for(store, "local", ["127.0.0.1"])
    with serving(settings, store) as port:
        spoofed = ping(port, outside, "203.0.113.7")
        assert spoofed.status_code == 403, spoofed.text
        assert spoofed.json()["details"]["client_ip"] == "127.0.0.1"
        assert ping(port, local, "198.51.100.9").status_code == 200


@pytest.mark.parametrize("trusted", [["127.0.0.1"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_a_trusted_proxy_names_the_client(tmp_path: Path, store: Store, trusted: list[str]
                                          ) -> None:
    settings = Settings(data_dir=tmp_path, http={"trusted_proxies": trusted})
    outside = key_for(store, "outside", ["203.0.113.7"])
    local = key_for(store, "local", ["127.0.0.1"])
    with serving(settings, store) as port:
        assert ping(port, outside, "203.0.113.7").status_code == 200
        # a client that prepends its own entry gets the address the proxy appended
        assert ping(port, outside, "198.51.100.9, 203.0.113.7").status_code == 200
        denied = ping(port, local, "198.51.100.9")
        assert denied.status_code == 403
        assert denied.json()["details"]["client_ip"] == "198.51.100.9"


def test_the_dashboard_sign_in_throttle_counts_the_peer(tmp_path: Path, store: Any) -> None:
    """Wrong keys with a new X-Forwarded-For each time all count against 127.0.0.1."""
    settings = Settings(data_dir=tmp_path, smtp={"auth_failure_limit": 3})
    with serving(settings, store) as port, httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        codes = [c.post("/dashboard/login", data={"key": "pr_wrong"},
                        headers={"X-Forwarded-For": f"10.9.0.{i}"}).status_code
                 for i in range(6)]
    assert codes[-1] == 429, codes
