"""An environment variable naming an unknown section (`POSTROOM_SMPT__…`) is an error, as an
unknown key in a known section is; other POSTROOM_ variables (POSTROOM_CONFIG, a test's own
POSTROOM_TEST_PG_ADMIN_URL, top-level keys) are untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config.settings import ConfigError, load_settings


def test_an_unknown_section_in_the_environment_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    monkeypatch.setenv("POSTROOM_SMPT__MAX_RECIPIENTS", "5")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "POSTROOM_SMPT__MAX_RECIPIENTS" in message and "unknown section 'smpt'" in message
    assert "smtp" in message  # the known sections are listed


def test_other_postroom_variables_keep_working(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[smtp]\nmax_recipients = 7\n")
    monkeypatch.setenv("POSTROOM_CONFIG", str(cfg))
    monkeypatch.setenv("POSTROOM_TEST_PG_ADMIN_URL", "postgresql://x@127.0.0.1/test")
    monkeypatch.setenv("POSTROOM_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("postroom_http__trusted_proxies", '["10.0.0.1"]')
    settings = load_settings()
    assert settings.smtp.max_recipients == 7 and settings.data_dir == tmp_path / "d"
    assert settings.http.trusted_proxies
