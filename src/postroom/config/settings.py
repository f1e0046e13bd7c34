"""Every knob Postroom has, with its default and the reason it exists.

Sources, strongest first: environment variables `POSTROOM_<SECTION>__<KEY>` (for example
`POSTROOM_SMTP__MAX_RECIPIENTS=500`; lists and tables as JSON), then the TOML file named by
`--config PATH` or `POSTROOM_CONFIG`, then the defaults below. Unknown keys in the file or the
environment (and an unknown `POSTROOM_<SECTION>__`) are an error, so a typo never silently falls
back to a default. `docs/CONFIGURATION.md` is generated
from the descriptions here (`postroom config reference`), and a test fails when it is stale.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

TlsMode = Literal["off", "opportunistic", "required"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSettings(_Section):
    """The SMTP ingress (submission) listeners."""

    hostname: str = Field("localhost", description="Name announced in the greeting and EHLO reply.")
    listen_plain: str = Field(
        "127.0.0.1:2525",
        description="host:port of the cleartext listener (STARTTLS offered). Empty disables it. "
        "Production: 0.0.0.0:25.",
    )
    listen_implicit_tls: str = Field(
        "127.0.0.1:2465",
        description="host:port of the implicit-TLS listener. Empty disables it. Production: :465.",
    )
    listen_starttls: str = Field(
        "127.0.0.1:2587",
        description="host:port of the submission listener (STARTTLS). Empty disables it. "
        "Production: :587.",
    )
    listen_inbound: str = Field(
        "",
        description="host:port of a listener for mail TO Postroom only (asynchronous bounces to "
        "VERP return paths, mailto unsubscribes), from any sender, without AUTH. Empty: off "
        "(the plain listener still takes bounces sent with the null sender).",
    )
    feedback_address: str | None = Field(
        None,
        description="Address that takes ARF (RFC 5965) feedback-loop reports; register it with "
        "mailbox providers. A complaint suppresses the address and records `complained`.",
    )
    tls_cert: str | None = Field(
        None,
        description="PEM certificate chain. When unset, a self-signed development certificate "
        "is generated into data_dir.",
    )
    tls_key: str | None = Field(None, description="PEM private key for tls_cert.")
    max_message_size: int = Field(
        20971520, ge=1024, description="Largest message accepted, in bytes (announced as SIZE)."
    )
    max_recipients: int = Field(
        1000, ge=1, le=10000, description="Recipients per transaction; more get 452 4.5.3."
    )
    allow_plaintext_auth: bool = Field(
        False, description="Offer AUTH on cleartext connections (only for trusted networks); "
        "the STARTTLS listener then no longer requires TLS before MAIL either."
    )
    idle_timeout: float = Field(
        300.0, gt=0, description="Seconds without a complete command before 421 4.4.2 and close."
    )
    data_timeout: float = Field(
        600.0, gt=0, description="Seconds allowed between two chunks of message data."
    )
    max_connections: int = Field(
        2000, ge=1, description="Concurrent connections per process; more get 421 4.7.0."
    )
    max_connections_per_ip: int = Field(
        200, ge=1, description="Concurrent connections from one client IP; more get 421 4.7.0."
    )
    auth_failure_limit: int = Field(
        10,
        ge=1,
        description="Failed AUTH attempts from one IP within auth_failure_window before that IP "
        "is slowed down and refused (454 4.7.0) until the window passes.",
    )
    auth_failure_window: float = Field(
        300.0, gt=0, description="Seconds over which AUTH failures are counted per IP."
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="SMTP ingress processes sharing the listening sockets (SO_REUSEPORT). "
        "One Python process saturates one core.",
    )


class HttpSettings(_Section):
    """The HTTP API, tracking and unsubscribe endpoints."""

    listen: str = Field("127.0.0.1:8025", description="host:port of the HTTP server.")
    public_url: str | None = Field(
        None,
        description="Base URL that recipients reach (tracking, unsubscribe). "
        "Defaults to http://<listen>.",
    )
    file_retention_days: int = Field(
        60, ge=1, le=3650, description="Days a file-cache upload stays usable as an attachment."
    )
    rate_limit_per_second: float = Field(
        0, ge=0, description="Requests per second allowed per API key (0: unlimited); over it "
        "the API answers 429 RATE_LIMITED."
    )
    max_request_bytes: int | None = Field(
        None, ge=1024,
        description="Largest request body, in bytes, for the API and the dashboard; a larger "
        "one is answered 413 REQUEST_TOO_LARGE (a declared Content-Length at once, a streamed "
        "body as soon as it passes the limit) and never read further. Unset: room for the "
        "largest legitimate request, a message of [smtp] max_message_size sent base64-encoded "
        "to send_raw (4/3 of it) or a 10 MB file upload, plus 1 MiB for the JSON around it "
        "(27.7 MiB with the default max_message_size). A send_mail batch larger than this must "
        "be split.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IP addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed: a request from one of them is taken to come from "
        "the address the proxies name (the accounts' IP allow lists, the dashboard's sign-in "
        "throttle, the addresses recorded with events). Empty: those headers are ignored and "
        "the connecting peer is the client; set it when a proxy is in front, or every client "
        "looks like the proxy.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Checked here: uvicorn takes a string it cannot parse as a literal host name, so a
        typo would silently trust nothing (or the wrong thing)."""
        out = []
        for v in value:
            try:
                out.append(str(ipaddress.ip_network(v.strip(), strict=False)
                               if "/" in v else ipaddress.ip_address(v.strip())))
            except ValueError:
                raise ValueError(f"not an IP address or network: {v!r}") from None
        return out


class StorageSettings(_Section):
    """The queue and everything else Postroom keeps."""

    url: str | None = Field(
        None,
        description="sqlite:///PATH or postgresql://user@host:port/db. Default: "
        "sqlite:///<data_dir>/postroom.db (WAL, synchronous=FULL).",
    )
    commit_timeout: float = Field(
        60.0, gt=0, le=600,
        description="Seconds an accepted message waits for its durable commit before the "
        "client is told to try again (SMTP 451 4.3.0, HTTP 503). The commit may still land "
        "later, so a stuck store can cause a duplicate, never a loss.",
    )
    writer_process: bool = Field(
        True,
        description="Commit what the SMTP listeners accept in a process of its own, shared by "
        "every [smtp] process, so that the group commit does not compete with the SMTP event "
        "loop for the interpreter lock (1.3-1.5 × the ingest rate at 10 sessions in "
        "bench/profile.py). HTTP sends take the same way. false: a writer thread in each "
        "ingress process.",
    )


class RouteSettings(_Section):
    """A static route or smarthost for a domain (or `*`). Routes win over DNS."""

    host: str = Field(description="Host name or IP address of the relay.")
    port: int = Field(25, ge=1, le=65535, description="TCP port.")
    username: str | None = Field(None, description="AUTH user name (smarthost).")
    password: str | None = Field(None, description="AUTH password (never logged).")
    tls: TlsMode = Field("opportunistic", description="STARTTLS: off, opportunistic, required.")
    verify: bool = Field(False, description="Verify the relay's certificate and name.")


class DeliverySettings(_Section):
    """Outbound delivery to recipients' mail servers."""

    enabled: bool = Field(True, description="Run delivery workers inside `postroom serve`.")
    nameservers: list[str] = Field(
        default_factory=list,
        description="DNS servers for MX lookups, as host or host:port. Empty: the system's.",
    )
    routes: dict[str, str | RouteSettings] = Field(
        default_factory=dict,
        description='Domain (or "*") to "host:port", or to a table {host, port, username, '
        "password, tls, verify} for a smarthost.",
    )
    mx_port: int = Field(25, ge=1, le=65535, description="TCP port used for MX hosts.")
    mta_sts: bool = Field(
        True,
        description="Honour recipient domains' MTA-STS policies (RFC 8461) when delivering "
        "through MX: in enforce mode mail goes only to the MX hosts the policy names, over "
        "TLS 1.2+ with a certificate valid for the host, and otherwise waits (4.7.5). false: "
        "no `_mta-sts` lookups.",
    )
    mta_sts_port: int = Field(
        443, ge=1, le=65535,
        description="For tests, like mx_port: TCP port of the MTA-STS policy servers "
        "(https://mta-sts.<domain>:<port>/.well-known/mta-sts.txt). Leave at 443.",
    )
    mta_sts_cafile: str | None = Field(
        None,
        description="For tests and private PKI: a CA file trusted instead of the system's "
        "for MTA-STS policy fetches and for the certificates of MX hosts under an MTA-STS "
        "policy. Unset: the system trust store.",
    )
    retry_base_seconds: float = Field(60.0, gt=0, description="Wait before the first retry.")
    retry_max_seconds: float = Field(7200.0, gt=0, description="Longest wait between retries.")
    expire_seconds: float = Field(
        432000.0, gt=0, description="Give up (failed) this long after acceptance."
    )
    max_connections: int = Field(100, ge=1, description="Outbound connections in total.")
    max_connections_per_host: int = Field(
        10, ge=1, description="Outbound connections to one destination host."
    )
    max_messages_per_connection: int = Field(
        100, ge=1, description="Messages sent over one connection before it is closed."
    )
    tls: TlsMode = Field("opportunistic", description="STARTTLS policy: off, opportunistic, required.")
    pipeline_messages: bool = Field(
        True,
        description="With PIPELINING, send the next message's MAIL, RCPT and DATA in the same "
        "write as the message before it on a reused connection (RFC 2920 3.1). Turn off for "
        "a receiver that mishandles commands following the final dot.",
    )
    lease_seconds: float = Field(
        300.0, gt=0, description="How long a claimed recipient stays leased to one worker."
    )
    helo_name: str | None = Field(None, description="Name sent in EHLO. Default: smtp.hostname.")
    workers: int = Field(
        4, ge=1, le=64,
        description="Delivery workers per `postroom serve` process; each claims its own batches.",
    )
    batch_size: int = Field(
        200, ge=1, le=10000, description="Recipients one worker claims (leases) at a time."
    )
    poll_seconds: float = Field(
        0.5, gt=0, le=60,
        description="Longest sleep of an idle worker before it looks for due mail again "
        "(it wakes earlier when the store says a retry is due).",
    )
    claim_interval_seconds: float = Field(
        0.1, ge=0, le=5,
        description="After a claim that found fewer than batch_size due recipients, the next "
        "claim (by any worker of the process) waits until this long after it, so that a queue "
        "fed as fast as it drains is taken in batches, not one message at a time. 0: no wait.",
    )
    idle_connection_seconds: float = Field(
        5.0, ge=0, description="Close an outbound connection left unused this long."
    )
    shutdown_grace_seconds: float = Field(
        5.0, ge=0, le=8,
        description="On SIGTERM, how long in-flight deliveries may finish before they are "
        "cut off (at most 8: the process exits 10 s after SIGTERM); the leases of what was "
        "cut off are released, so the next start retries those recipients at once.",
    )

    @field_validator("nameservers", mode="before")
    @classmethod
    def _split_nameservers(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class WebhookSettings(_Section):
    """Events out: account webhooks and per-message notify/tracking URLs."""

    enabled: bool = Field(
        True, description="Run the webhook dispatcher and sender inside `postroom serve` "
        "(in a thread of their own: a slow receiver never slows mail delivery).",
    )
    retry_base_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="Wait before the first retry of a failed delivery; each later wait doubles.",
    )
    retry_max_seconds: float = Field(
        3600.0, gt=0, description="Longest wait between two attempts of one delivery."
    )
    give_up_after_seconds: float = Field(
        259200.0, ge=86400,
        description="Keep retrying (timeouts, connection errors, 5xx, 408, 429) this long after "
        "the event; at least 24 hours.",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Time one POST may take, connecting included."
    )
    max_concurrency: int = Field(64, ge=1, le=1000, description="POSTs in flight in total.")
    max_per_account: int | None = Field(
        None, ge=1, le=1000,
        description="POSTs in flight for one account, over all its receivers (notify URLs on "
        "many hosts, all dead, cannot take every slot). Unset: half of max_concurrency (at "
        "least 1), so the other accounts always keep the other half.",
    )
    max_per_endpoint: int = Field(
        8, ge=1, le=100,
        description="POSTs in flight to one receiver (scheme, host and port): a dead receiver "
        "holds at most this many slots, never the others'.",
    )
    dispatch_batch: int = Field(
        1000, ge=1, le=10000, description="Events turned into deliveries per store transaction."
    )
    poll_seconds: float = Field(
        0.25, gt=0, le=60, description="Longest idle wait before looking for new events again."
    )
    lease_seconds: float = Field(
        300.0, ge=10,
        description="How long a delivery being attempted stays leased to this process.",
    )
    retention_days: float = Field(
        14.0, gt=0, le=3650,
        description="Finished deliveries and their attempts are kept this long for "
        "`GET /v1/webhooks/{id}/deliveries`, then forgotten (the event log stays).",
    )
    allow_private_targets: bool = Field(
        False,
        description="Let webhook and notify URLs reach loopback, private, link-local and other "
        "non-public addresses (a receiver on this host or network). Off: such POSTs are refused "
        "where the connection is made, so that API keys cannot reach internal services (SSRF).",
    )
    secret_overlap_hours: float = Field(
        24.0, ge=0, le=720,
        description="After a secret rotation, how long the previous secret still signs "
        "deliveries (a second v1 signature), unless the rotation says otherwise.",
    )


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="POSTROOM_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(Path("data"), description="Where the SQLite store and dev TLS live; "
                           "a relative path is relative to the working directory of each "
                           "command (serve and the CLI alike).")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _CONFIG_FILE is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE))
        return tuple(sources)

    @property
    def storage_url(self) -> str:
        """The effective store URL (the default lives under data_dir)."""
        return self.storage.url or f"sqlite:///{self.data_dir / 'postroom.db'}"


_CONFIG_FILE: Path | None = None


class ConfigError(ValueError):
    """The configuration file is missing or invalid (message is user-facing)."""


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from `config_path` (or $POSTROOM_CONFIG) plus the environment."""
    global _CONFIG_FILE
    path = config_path or os.environ.get("POSTROOM_CONFIG") or None
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"configuration file not found: {path}")
    _CONFIG_FILE = Path(path) if path else None
    try:
        _check_env_sections()
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in configuration file {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: "
                          f"{exc.strerror or exc}") from None
    except SettingsError as exc:  # an environment value that does not parse (bad JSON)
        raise ConfigError(_env_problem(exc)) from None
    finally:
        _CONFIG_FILE = None


def _check_env_sections() -> None:
    """pydantic-settings ignores POSTROOM_<SECTION>__KEY for a section it does not know, so a
    misspelt section would silently not apply; unknown keys elsewhere are errors already."""
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    sections = sorted(n for n, f in Settings.model_fields.items()
                      if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
    for name in sorted(os.environ):
        head, sep, _ = name.upper().removeprefix(prefix).partition("__")
        if name.upper().startswith(prefix) and sep and head.lower() not in sections:
            raise ConfigError(f"unknown section '{head.lower()}' in environment variable {name} "
                              f"(sections: {', '.join(sections)})")


def _env_problem(exc: SettingsError) -> str:
    """Name the environment variable(s) behind a SettingsError (it names only the field)."""
    cause = exc.__cause__ or exc.__context__
    detail = f": {cause}" if cause is not None else ""
    found = re.search(r'field "([^"]+)"', str(exc))
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names = sorted(
        name for name in os.environ
        if found is not None and (name.upper() == f"{prefix}{found.group(1).upper()}"
                                  or name.upper().startswith(f"{prefix}{found.group(1).upper()}__"))
    )
    if names:
        return f"invalid value in environment variable {' or '.join(names)}{detail}"
    return f"invalid configuration from the environment: {exc}{detail}"
