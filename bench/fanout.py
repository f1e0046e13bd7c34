"""Personalized fan-out: one SMTP submission to 10,000 recipients, end to end, against plain.

    .venv/bin/python bench/fanout.py                   # 10,000 recipients, 2 rounds
    .venv/bin/python bench/fanout.py -n 2000 --rounds 1

One `postroom serve` (embedded SQLite, delivery on, DKIM key from `postroom domains add`), every
domain routed (`[delivery] routes`, "*") to Postfix's `smtp-sink` on loopback. Each round sends
two messages, one after the other, each to the same N recipients in one SMTP transaction:

* plain: no control headers. One copy serves every recipient: transactions of 100 RCPTs, one
  DKIM signature for the message.
* personalized: a Zoho `X-ZCEA-SMTP-DATA` header with `merge_data` for every recipient (first
  name, order number; `$[first_name|Friend]$` in the Subject, text and HTML parts), open and
  click tracking on (`X-TM-OPEN-TRACK`, `X-TM-CLICK-TRACK`), a campaign name (so List-Unsubscribe
  headers). Every recipient gets its own copy, its own transaction and its own DKIM signature.

The rate is recipients per second from the first byte of the submission until the store has
every recipient `delivered`. The plain and personalized runs alternate, so drift of a shared
machine hits both alike; the report gives each run and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.server import free_port, wait_port  # noqa: E402  (the tests' loopback helpers)

POSTROOM = [str(ROOT / ".venv" / "bin" / "postroom")]
DOMAINS = 10  # recipients spread over this many domains (all routed to the sink)
HTML = ("<html><body><p>Hello $[first_name|Friend]$,</p><p>Your order $[order|?]$ shipped. "
        '<a href="https://shop.example.com/orders">Track it</a> or '
        '<a href="https://shop.example.com/help?x=1&amp;y=2">get help</a>.</p></body></html>')
TEXT = ("Hello $[first_name|Friend]$,\n\nYour order $[order|?]$ shipped: "
        "https://shop.example.com/orders\n")


def recipients(n: int) -> list[str]:
    return [f"user{i}@d{i % DOMAINS}.example.net" for i in range(n)]


def message(rcpts: list[str], personalized: bool, label: str) -> bytes:
    head = ["From: Shop <news@example.com>", "To: Customers <customers@example.com>",
            f"Subject: Hello $[first_name|Friend]$, your order ({label})",
            f"Message-ID: <{label}@example.com>", "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "MIME-Version: 1.0"]
    if personalized:
        data = {"campaign_name": f"Fan-out {label}", "recipient_data": {
            r: {"name": f"User {i}", "merge_data": {"first_name": f"User{i}", "order": str(i)}}
            for i, r in enumerate(rcpts)}}
        head += [f"X-ZCEA-SMTP-DATA: {json.dumps(data, separators=(',', ':'))}",
                 "X-TM-OPEN-TRACK: true", "X-TM-CLICK-TRACK: true"]
    head.append('Content-Type: multipart/alternative; boundary="b1"')
    body = (f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{TEXT}\r\n"
            f"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{HTML}\r\n--b1--\r\n")
    return ("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n").replace("\r\r", "\r")
            ).encode()


class Bench:
    def __init__(self, workdir: Path, n: int, webhooks: bool = True) -> None:
        self.dir, self.n, self.webhooks = workdir, n, webhooks
        self.smtp, self.http, self.sink_port = free_port(), free_port(), free_port()
        self.config = workdir / "postroom.toml"
        self.db = workdir / "data" / "postroom.db"
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str) -> str:
        return subprocess.run([*POSTROOM, *args, "--config", str(self.config)], check=True,
                              capture_output=True, text=True, timeout=120).stdout

    def start(self) -> None:
        (self.dir / "data").mkdir(parents=True)
        self.config.write_text(
            f'data_dir = "{self.dir / "data"}"\n'
            f'[smtp]\nhostname = "postroom.bench.test"\nlisten_plain = "127.0.0.1:{self.smtp}"\n'
            'listen_implicit_tls = ""\nlisten_starttls = ""\nmax_recipients = 10000\n'
            f'[http]\nlisten = "127.0.0.1:{self.http}"\n'
            "[delivery]\nenabled = true\ntls = \"off\"\npoll_seconds = 0.1\n"
            f'[delivery.routes]\n"*" = "127.0.0.1:{self.sink_port}"\n'
            f"[webhooks]\nenabled = {str(self.webhooks).lower()}\n"
            "allow_private_targets = true\n")  # receivers on loopback
        self.cli("accounts", "create", "bench", "--sender-domain", "example.com",
                 "--trusted-network", "127.0.0.0/8")
        self.cli("domains", "add", "example.com", "--selector", "s1")
        sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
        self.procs.append(subprocess.Popen([sink, *user, "-c", f"127.0.0.1:{self.sink_port}",
                                            "1000"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        log = (self.dir / "postroom.log").open("wb")
        self.procs.append(subprocess.Popen([*POSTROOM, "serve", "--config", str(self.config)],
                                           stdout=log, stderr=subprocess.STDOUT))
        wait_port(self.sink_port)
        wait_port(self.smtp)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def delivered(self, message_id: str) -> int:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return int(conn.execute("select count(*) from recipients where message_id = ? and "
                                    "status = 'delivered'", (message_id,)).fetchone()[0])

    def run(self, personalized: bool, label: str) -> dict[str, float]:
        rcpts = recipients(self.n)
        data = message(rcpts, personalized, label)
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=120) as c:
            c.ehlo("bench")
            c.mail("news@example.com")
            for r in rcpts:
                code, text = c.rcpt(r)
                if code != 250:
                    raise RuntimeError(f"RCPT {r}: {code} {text!r}")
            code, text = c.data(data)
            if code != 250:
                raise RuntimeError(f"DATA: {code} {text!r}")
        accepted = time.perf_counter() - t0
        mid = text.decode().split("<")[1].rstrip(">")
        deadline = time.monotonic() + 600
        while (done := self.delivered(mid)) < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {done} of {self.n} delivered after 600 s")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        return {"seconds": total, "accepted_after": accepted, "rate": self.n / total,
                "bytes": len(data)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--recipients", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-webhooks", action="store_true",
                    help="[webhooks] enabled = false (no event dispatcher beside delivery)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="postroom-fanout-"))
    bench = Bench(workdir, args.recipients, webhooks=not args.no_webhooks)
    results: dict[str, list[dict[str, float]]] = {"plain": [], "personalized": []}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, Python "
          f"{sys.version.split()[0]}, webhooks {'off' if args.no_webhooks else 'on'}", flush=True)
    try:
        bench.start()
        for i in range(args.rounds):
            for kind in ("plain", "personalized") if i % 2 == 0 else ("personalized", "plain"):
                r = bench.run(kind == "personalized", f"{kind}-{i}")
                results[kind].append(r)
                print(f"round {i + 1} {kind:>12}: {args.recipients} recipients in "
                      f"{r['seconds']:.2f} s = {r['rate']:.0f}/s (accepted after "
                      f"{r['accepted_after']:.2f} s, message {r['bytes'] / 1e6:.2f} MB)",
                      flush=True)
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory: {workdir}")
    plain = statistics.median(r["rate"] for r in results["plain"])
    personal = statistics.median(r["rate"] for r in results["personalized"])
    print(f"median plain {plain:.0f}/s, personalized {personal:.0f}/s: "
          f"personalized = {100 * personal / plain:.0f}% of plain (target >= 50%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
