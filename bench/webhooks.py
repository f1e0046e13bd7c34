"""Webhooks under load: events per second reaching a loopback receiver while 20,000 messages are
delivered, and the mail rate with webhooks on against off, in the same run.

    .venv/bin/python bench/webhooks.py                          # 20,000 messages, 2 rounds
    .venv/bin/python bench/webhooks.py -n 5000 --rounds 1 --batch-size 1

Each run is a fresh `postroom serve` (embedded SQLite, delivery on, every domain routed to
Postfix's `smtp-sink` on loopback). N one-recipient messages are queued straight into the store
before the server starts, so the run measures delivery, not submission. With webhooks on, one
account webhook subscribed to every event type (queued and delivered: 2 events per message)
points at an HTTP receiver in this process (tests/support/http_receiver.py). Runs alternate
off/on so that drift of a shared machine hits both alike.

Mail rate: N / (last `delivered` event - first `delivered` event). Events per second: events
received / (last POST received - first `delivered` event), and how long after the last mail
delivery the last event arrived. Exits 1 if the median on/off ratio is below 0.8.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
POSTROOM = str(ROOT / ".venv" / "bin" / "postroom")
BODY = ("Hello,\r\n\r\n" + "Your weekly summary is ready. " * 40 + "\r\n").encode()

from postroom.model import NewMessage, new_id  # noqa: E402
from postroom.store import Store  # noqa: E402
from support.http_receiver import HttpReceiver  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the graceful stop), SIGKILL if it is still there 20 s later."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(20)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def write_config(workdir: Path, sink_port: int, webhooks: bool) -> Path:
    config = workdir / "postroom.toml"
    config.write_text(
        f'data_dir = "{workdir / "data"}"\n'
        f'[smtp]\nhostname = "postroom.bench.test"\nlisten_plain = "127.0.0.1:{free_port()}"\n'
        'listen_implicit_tls = ""\nlisten_starttls = ""\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[delivery]\nenabled = true\ntls = "off"\npoll_seconds = 0.1\n'
        f'routes = {{ "*" = "127.0.0.1:{sink_port}" }}\n'
        f"[webhooks]\nenabled = {str(webhooks).lower()}\n"
        "allow_private_targets = true\n")  # its receiver is on loopback
    return config


def prepare(workdir: Path, n: int, hook_url: str | None, batch_size: int) -> str:
    url = f"sqlite:///{workdir / 'data' / 'postroom.db'}"
    with Store.open(url) as store:
        account = store.create_account("bench", sender_domains=["example.com"])
        if hook_url:
            store.create_webhook(account.id, hook_url, batch_size=batch_size)
        for start in range(0, n, 1000):
            store.enqueue_many([NewMessage(
                id=new_id(), account_id=account.id, mail_from="news@example.com",
                recipients=(f"u{i}@d{i % 10}.bench.test",), header_from="news@example.com",
                subject=f"Summary {i}", raw=b"From: news@example.com\r\nTo: u@x\r\nSubject: "
                + f"Summary {i}\r\n\r\n".encode() + BODY,
                options={"tags": ["weekly"], "metadata": {"n": str(i)}},
            ) for i in range(start, min(n, start + 1000))])
    return url


def delivered_span(db: Path) -> tuple[int, float, float]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        count, first, last = conn.execute(
            "select count(*), min(at), max(at) from events where type = 'delivered'").fetchone()
    if not count:
        return 0, 0.0, 0.0
    stamp = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731 - naive UTC both
    return int(count), stamp(first), stamp(last)


def run(mode: str, n: int, sink_port: int, batch_size: int, timeout: float) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"postroom-bench-webhooks-{mode}-"))
    receiver = HttpReceiver().start() if mode == "on" else None
    log = workdir / "serve.log"
    proc = None
    try:
        (workdir / "data").mkdir()
        config = write_config(workdir, sink_port, webhooks=receiver is not None)
        prepare(workdir, n, receiver.url() if receiver else None, batch_size)
        with log.open("wb") as out:
            proc = subprocess.Popen([POSTROOM, "serve", "--config", str(config)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        db, deadline = workdir / "data" / "postroom.db", time.monotonic() + timeout
        while delivered_span(db)[0] < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{mode}: not all delivered; see {log}")
            time.sleep(0.25)
        _, first, last = delivered_span(db)
        result = {"mail_per_s": n / max(last - first, 1e-6), "mail_seconds": last - first}
        if receiver is not None:
            want = 2 * n  # queued + delivered
            while sum(len(r.json()["events"]) for r in receiver.accepted()) < want:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"webhook events missing; see {log}")
                time.sleep(0.25)
            got = receiver.accepted()
            arrived = max(r.at for r in got)
            result.update(events=want, posts=len(got), events_per_s=want / (arrived - first),
                          lag_after_mail_s=arrived - last)
        return result
    finally:
        if proc is not None:
            stop(proc)
        if receiver is not None:
            receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100, help="events per POST")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = parser.parse_args()
    if not shutil.which("smtp-sink"):
        print("smtp-sink not found: apt-get install postfix", file=sys.stderr)
        return 2
    sink_port = free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
    sink = subprocess.Popen(["smtp-sink", *as_root, "-c", f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        time.sleep(0.3)
        if sink.poll() is not None:
            print(f"smtp-sink failed: {sink.stderr.read().decode()}", file=sys.stderr)  # type: ignore[union-attr]
            return 2
        for round_ in range(args.rounds):
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                got = run(mode, args.messages, sink_port, args.batch_size, args.timeout)
                results[mode].append(got)
                print(f"round {round_ + 1} webhooks {mode:<3} "
                      + "  ".join(f"{k}={v:.1f}" for k, v in got.items()), flush=True)
    finally:
        stop(sink)
    off = statistics.median(r["mail_per_s"] for r in results["off"])
    on = statistics.median(r["mail_per_s"] for r in results["on"])
    events = statistics.median(r["events_per_s"] for r in results["on"])
    summary = {"messages": args.messages, "batch_size": args.batch_size, "rounds": args.rounds,
               "mail_per_s_off": round(off, 1), "mail_per_s_on": round(on, 1),
               "ratio": round(on / off, 3), "events_per_s": round(events, 1)}
    print(json.dumps(summary))
    return 0 if on / off >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
