"""`[http] trusted_proxies` and `max_request_bytes`: checked when read, never silently wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config.settings import ConfigError, load_settings


def test_trusted_proxies_from_the_file_and_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    assert load_settings().http.trusted_proxies == []
    assert load_settings().http.max_request_bytes is None
    cfg = tmp_path / "p.toml"
    cfg.write_text('[http]\ntrusted_proxies = ["10.1.2.3", "192.168.0.0/16", "::1"]\n'
                   "max_request_bytes = 50000000\n")
    s = load_settings(cfg)
    assert s.http.trusted_proxies == ["10.1.2.3", "192.168.0.0/16", "::1"]
    assert s.http.max_request_bytes == 50_000_000
    monkeypatch.setenv("POSTROOM_HTTP__TRUSTED_PROXIES", '["127.0.0.1", "fd00::/8"]')
    assert load_settings().http.trusted_proxies == ["127.0.0.1", "fd00::/8"]
    cfg.write_text('[http]\ntrusted_proxies = "127.0.0.1, 172.16.0.0/12"\n')
    monkeypatch.delenv("POSTROOM_HTTP__TRUSTED_PROXIES")
    assert load_settings(cfg).http.trusted_proxies == ["127.0.0.1", "172.16.0.0/12"]


@pytest.mark.parametrize("value", ['["10.0.0.x"]', '["proxy.example"]', '["10.0.0.0/33"]', '["*"]'])
def test_a_proxy_that_is_no_address_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    """uvicorn would take it as a literal host name that never matches (or, for "*", trust
    every peer): refused instead."""
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f"[http]\ntrusted_proxies = {value}\n")
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(cfg)


def test_a_tiny_body_limit_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    cfg = tmp_path / "p.toml"
    cfg.write_text("[http]\nmax_request_bytes = 100\n")
    with pytest.raises(ConfigError, match="max_request_bytes"):
        load_settings(cfg)
