"""Run a real `postroom serve` process on loopback for end-to-end tests.

Ports are picked free, the store is a fresh SQLite file (or a given URL), accounts and keys are
made with the real CLI, and the process is stopped (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.smtp_sinks import free_port

POSTROOM = [sys.executable, "-m", "postroom"]




def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class RunningServer:
    root: Path
    config: Path
    plain: int
    implicit_tls: int
    starttls: int
    http: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    storage_url: str = ""
    inbound: int = 0  # the inbound listener's port, when a test configures one
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def cert(self) -> Path:
        return self.root / "data" / "dev-cert.pem"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*POSTROOM, *args, "--config", str(self.config)], env=self.env,
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"postroom {' '.join(args)} failed: {proc.stderr}")
        return proc

    def create_account(self, name: str, *args: str) -> str:
        """Create an account with its first key; returns the key."""
        self.cli("accounts", "create", name, *args)
        key = json.loads(self.cli("keys", "create", "--account", name, "--json").stdout)["key"]
        self.keys[name] = key
        return key

    def message(self, message_id: str) -> dict[str, Any]:
        return json.loads(self.cli("messages", "show", message_id, "--json").stdout)

    def start(self) -> None:
        assert self.proc is None
        self.log_path = self.root / f"serve-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([*POSTROOM, "serve", "--config", str(self.config)],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for port in (self.plain, self.implicit_tls, self.starttls, self.http):
                wait_port(port)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"server did not start:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: the crash the durability promise is about."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def submit(port: int, sender: str, recipient: str, message: bytes) -> tuple[int, bytes]:
    """One message over a new plain connection (a trusted network, no AUTH): DATA's reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("x")
        c.mail(sender)
        c.rcpt(recipient)
        return c.data(message)


def make_server(root: Path, *, storage_url: str | None = None, extra: str = "",
                smtp_extra: str = "", delivery: str = "enabled = false\n") -> RunningServer:
    root.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(4)]
    config = root / "postroom.toml"
    storage = f'[storage]\nurl = "{storage_url}"\n' if storage_url else ""
    config.write_text(
        f'data_dir = "{root / "data"}"\n{extra}'
        f'[smtp]\nhostname = "postroom.test"\nlisten_plain = "127.0.0.1:{ports[0]}"\n'
        f'listen_implicit_tls = "127.0.0.1:{ports[1]}"\nlisten_starttls = "127.0.0.1:{ports[2]}"\n'
        f"{smtp_extra}"
        f'[http]\nlisten = "127.0.0.1:{ports[3]}"\n{storage}[delivery]\n{delivery}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    url = storage_url or f"sqlite:///{root / 'data' / 'postroom.db'}"
    return RunningServer(root, config, *ports, env=env, storage_url=url)


def tls_ctx() -> ssl.SSLContext:
    """A client context that accepts the server's self-signed development certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
