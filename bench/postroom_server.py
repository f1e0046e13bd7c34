"""Shared by the bench scripts: a fresh Postroom server on loopback, and /proc readings.

`PostroomServer` writes a config into its own directory, creates the `bench` account (sender
domain example.com, trusts 127.0.0.0/8 so clients submit without AUTH), starts `postroom serve`
with delivery off and waits for "postroom ready". `stop()` sends SIGTERM (bounded wait, then
SIGKILL). Only the process it started is ever signalled.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POSTROOM = ROOT / ".venv" / "bin" / "postroom"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class PostroomServer:
    workdir: Path
    port: int = 12610
    http_port: int = 12611
    processes: int = 1
    max_message_size: int | None = None
    #: deliver everything to this host:port (delivery on, TLS off) instead of delivery off
    deliver_to: str | None = None
    #: more [delivery] keys (TOML lines), with `deliver_to`
    delivery_extra: str = ""
    ready_timeout: float = 30.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def config(self) -> Path:
        return self.workdir / "postroom.toml"

    @property
    def db(self) -> Path:
        return self.workdir / "data" / "postroom.db"

    @property
    def log(self) -> Path:
        return self.workdir / "postroom.log"

    def start(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=False)  # must start empty
        size = f"max_message_size = {self.max_message_size}\n" if self.max_message_size else ""
        self.config.write_text(
            f'data_dir = "{self.workdir / "data"}"\n\n'
            "[smtp]\n"
            'hostname = "postroom.bench.test"\n'
            f'listen_plain = "127.0.0.1:{self.port}"\n'
            'listen_implicit_tls = ""\nlisten_starttls = ""\n'
            f"processes = {self.processes}\n{size}\n"
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n\n'
            + ("[delivery]\nenabled = false\n" if self.deliver_to is None else
               f'[delivery]\nenabled = true\nroutes = {{ "*" = "{self.deliver_to}" }}\ntls = "off"\n'
               f"{self.delivery_extra}\n")
        )
        subprocess.run(
            [str(POSTROOM), "accounts", "create", "bench", "--sender-domain", "example.com",
             "--trusted-network", "127.0.0.0/8", "--config", str(self.config)],
            check=True, stdout=subprocess.DEVNULL, timeout=60,
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(POSTROOM), "serve", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if b"postroom ready" in self.log.read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postroom did not become ready; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stored_messages(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("select count(*) from messages").fetchone()[0])


def descendants(pid: int) -> list[int]:
    """pid and every process below it (by scanning /proc/*/stat for parent ids)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent_of[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, p in parent_of.items() if p in frontier]
        found += frontier
    return found


def status_kb(pid: int, key: str) -> int:
    """A 'kB' field of /proc/PID/status (VmRSS, VmHWM, ...); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (their own, not waited-for children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait
