"""Settings: file + env precedence, validation, and docs/CONFIGURATION.md kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config.reference import render
from postroom.config.settings import ConfigError, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_docs_are_generated_from_the_model() -> None:
    assert DOCS.read_text() == render(), "run: postroom config reference > docs/CONFIGURATION.md"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    s = load_settings()
    assert s.smtp.listen_plain == "127.0.0.1:2525"
    assert s.smtp.listen_implicit_tls == "127.0.0.1:2465"
    assert s.smtp.listen_starttls == "127.0.0.1:2587"
    assert s.http.listen == "127.0.0.1:8025"
    assert s.smtp.max_message_size == 20971520 and s.smtp.max_recipients == 1000
    assert s.smtp.allow_plaintext_auth is False
    assert s.storage_url == "sqlite:///data/postroom.db"


def test_file_then_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('data_dir = "/srv/x"\n[smtp]\nhostname = "mx.example"\nmax_recipients = 50\n'
                   '[delivery]\nroutes = { "*" = "127.0.0.1:2526" }\nnameservers = ["127.0.0.1:53"]\n')
    monkeypatch.setenv("POSTROOM_SMTP__MAX_RECIPIENTS", "70")
    s = load_settings(cfg)
    assert s.smtp.hostname == "mx.example" and s.smtp.max_recipients == 70
    assert str(s.data_dir) == "/srv/x"
    assert s.delivery.routes == {"*": "127.0.0.1:2526"}
    monkeypatch.setenv("POSTROOM_CONFIG", str(cfg))
    assert load_settings().smtp.hostname == "mx.example"


def test_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    cfg = tmp_path / "p.toml"
    cfg.write_text("[smtp]\nmax_recipents = 5\n")
    with pytest.raises(ConfigError, match="max_recipents"):
        load_settings(cfg)
    monkeypatch.setenv("POSTROOM_SMTP__MAX_RECIPIENTS", "20000")
    with pytest.raises(ConfigError, match="max_recipients"):
        load_settings()


def test_toml_syntax_error_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    cfg = tmp_path / "broken.toml"
    cfg.write_text('data_dir = [\n')
    with pytest.raises(ConfigError, match=r"invalid TOML in configuration file .*broken\.toml"):
        load_settings(cfg)
    cfg.write_bytes(b'data_dir = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match=r"broken\.toml is not UTF-8"):
        load_settings(cfg)


def test_unparsable_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    monkeypatch.setenv("POSTROOM_DELIVERY__ROUTES", "{bad")
    with pytest.raises(ConfigError, match="POSTROOM_DELIVERY__ROUTES"):
        load_settings()
    monkeypatch.delenv("POSTROOM_DELIVERY__ROUTES")
    monkeypatch.setenv("POSTROOM_SMTP", "[not json")
    with pytest.raises(ConfigError, match="environment variable POSTROOM_SMTP:"):
        load_settings()


def test_cli_reports_config_errors_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from postroom.cli import app

    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    cfg = tmp_path / "broken.toml"
    cfg.write_text('data_dir = [\n')
    result = CliRunner().invoke(app, ["accounts", "list", "--config", str(cfg)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "invalid TOML" in result.output
    cfg.write_text(f'data_dir = "{tmp_path}"\n')
    monkeypatch.setenv("POSTROOM_DELIVERY__ROUTES", "{bad")
    result = CliRunner().invoke(app, ["accounts", "list", "--config", str(cfg)])
    assert result.exit_code == 2 and "POSTROOM_DELIVERY__ROUTES" in result.output
