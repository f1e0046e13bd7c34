"""One message, many recipients: submit it over SMTP, time until Postroom records all delivered.

Used by bench/delivery_e2e.sh (FANOUT=N). The message (2 KB body) goes to r<i>@d<i % domains>.example.org
for i < --recipients, in one SMTP transaction to Postroom's plain listener (its [smtp]
max_recipients must allow that many). Delivery is followed in the store (SQLite, read-only): the
clock stops when every recipient row has status 'delivered' (each one acknowledged by the sink's
250). Meanwhile the RSS of the server (and any children) is sampled every 50 ms; VmHWM (the
kernel's peak) is reported too.

    delivery_fanout.py --port P --db DB --pid SERVER_PID [--recipients 10000] [--domains 100]
"""

from __future__ import annotations

import argparse
import smtplib
import sqlite3
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postroom_server import descendants, status_kb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--recipients", type=int, default=10000)
    ap.add_argument("--domains", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--monitor-log", help="bench/cpu_monitor.py log: report foreign cores during the run")
    a = ap.parse_args()

    rcpts = [f"r{i}@d{i % a.domains:02d}.example.org" for i in range(a.recipients)]
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "undisclosed-recipients:;"
    msg["Subject"] = f"fan-out to {a.recipients} recipients"
    msg.set_content(("x" * 75 + "\n") * 26)  # ~2 KB

    rss_before = sum(status_kb(p, "VmRSS") for p in descendants(a.pid))
    t0 = time.time()
    with smtplib.SMTP("127.0.0.1", a.port, timeout=120) as s:
        refused = s.send_message(msg, from_addr="a@example.com", to_addrs=rcpts)
    t_accept = time.time() - t0
    if refused:
        print(f"refused recipients: {len(refused)}", file=sys.stderr)

    peak_rss = 0
    delivered = 0
    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True, timeout=30)
    last_poll = 0.0
    deadline = t0 + a.timeout
    while time.time() < deadline:
        peak_rss = max(peak_rss, sum(status_kb(p, "VmRSS") for p in descendants(a.pid)))
        if time.time() - last_poll >= 0.2:
            last_poll = time.time()
            delivered = db.execute("select count(*) from recipients where status = 'delivered'").fetchone()[0]
            if delivered >= a.recipients:
                break
        time.sleep(0.05)
    t_done = time.time() - t0
    hwm = sum(status_kb(p, "VmHWM") for p in descendants(a.pid))
    statuses = dict(db.execute("select status, count(*) from recipients group by status").fetchall())
    ok = delivered >= a.recipients
    foreign = "-"
    if a.monitor_log:
        time.sleep(1)
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("cpu_monitor.py")), "between",
                              "--log", a.monitor_log, str(t0), str(time.time())],
                             capture_output=True, text=True).stdout.split()
        foreign = out[0] if out else "-"
    print(f"fanout recipients={a.recipients} domains={a.domains} accepted_s={t_accept:.2f} "
          f"all_delivered_s={t_done:.2f} ({'ok' if ok else 'TIMEOUT'}) rate={a.recipients / t_done:.0f} rcpt/s "
          f"rss_before_mb={rss_before / 1024:.0f} peak_rss_sampled_mb={peak_rss / 1024:.0f} "
          f"vmhwm_mb={hwm / 1024:.0f} foreign_cores={foreign} statuses={statuses}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
