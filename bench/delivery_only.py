"""Delivery alone: how fast the delivery process empties a full queue, and its CPU per message.

    .venv/bin/python bench/delivery_only.py                 # 20,000 messages over 100 domains
    .venv/bin/python bench/delivery_only.py -n 5000 -d 10 --rounds 3
    .venv/bin/python bench/delivery_only.py --py-spy /tmp/d.txt   # raw py-spy profile (8 s, --gil)

N one-recipient messages (about 6 KB) to u<i>@d<i % D>.bench.test are queued straight into a
fresh SQLite store, then `postroom serve` starts (delivery on, webhooks off, every domain routed
to Postfix's `smtp-sink` on loopback, other [delivery] keys at their defaults). Rate = N / (last
`delivered` event - first one). CPU = user and system time of the delivery child process (all
its threads, start-up included) divided by N. The end-to-end benchmark (delivery_e2e.sh) shares
the machine with ingest; this one shows the delivery side's own ceiling.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import webhooks as shared  # noqa: E402  (free_port, write_config, delivered_span, stop, BODY)

from postroom.model import NewMessage, new_id  # noqa: E402
from postroom.store import Store  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def queue(workdir: Path, n: int, domains: int) -> None:
    with Store.open(f"sqlite:///{workdir / 'data' / 'postroom.db'}") as store:
        account = store.create_account("bench", sender_domains=["example.com"])
        for start in range(0, n, 1000):
            store.enqueue_many([NewMessage(
                id=new_id(), account_id=account.id, mail_from="news@example.com",
                recipients=(f"u{i}@d{i % domains}.bench.test",), header_from="news@example.com",
                subject=f"Summary {i}",
                raw=b"From: news@example.com\r\nTo: u@x\r\nSubject: S\r\n\r\n" + shared.BODY * 3,
            ) for i in range(start, min(n, start + 1000))])


def child_cpu(parent: int) -> dict[str, float]:
    """user/system seconds of each child of `parent` (the delivery child is the busiest)."""
    out: dict[str, float] = {}
    kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    for pid in kids.stdout.split():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out[pid] = (int(fields[11]) / TICK, int(fields[12]) / TICK)  # type: ignore[assignment]
    return out


def one_round(n: int, domains: int, spy: str | None, timeout: float) -> dict[str, float]:
    port = shared.free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workdir = Path(tempfile.mkdtemp(prefix="postroom-bench-delivery-"))
    proc = profiler = None
    try:
        (workdir / "data").mkdir()
        config = shared.write_config(workdir, port, webhooks=False)
        queue(workdir, n, domains)
        with (workdir / "serve.log").open("wb") as log:
            proc = subprocess.Popen([shared.POSTROOM, "serve", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT)
        db, deadline = workdir / "data" / "postroom.db", time.monotonic() + timeout
        while shared.delivered_span(db)[0] < min(50, n):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"delivery did not start; see {workdir / 'serve.log'}")
            time.sleep(0.05)
        if spy:
            profiler = subprocess.Popen(
                [str(BENCH.parent / ".venv" / "bin" / "py-spy"), "record", "-r", "100", "-d", "8",
                 "--gil", "-f", "raw", "-o", spy, "--subprocesses", "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while shared.delivered_span(db)[0] < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"not all delivered; see {workdir / 'serve.log'}")
            time.sleep(0.2)
        _, first, last = shared.delivered_span(db)
        busiest = max(child_cpu(proc.pid).values(), key=sum)  # type: ignore[arg-type]
        return {"rate": n / max(last - first, 1e-6), "user_us": busiest[0] * 1e6 / n,  # type: ignore[index]
                "sys_us": busiest[1] * 1e6 / n}  # type: ignore[index]
    finally:
        if proc is not None:
            shared.stop(proc)
        if profiler is not None:
            profiler.wait()
        sink.terminate()
        sink.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--messages", type=int, default=20_000)
    parser.add_argument("-d", "--domains", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--py-spy", help="write a raw py-spy profile (GIL samples) here")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    for r in range(1, args.rounds + 1):
        got = one_round(args.messages, args.domains, args.py_spy if r == 1 else None,
                        args.timeout)
        print(f"round {r}: {args.messages} messages over {args.domains} domains: "
              f"{got['rate']:,.0f} msgs/s; delivery process {got['user_us']:.0f} us user + "
              f"{got['sys_us']:.0f} us system CPU per message", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
