"""HTTP send throughput (issue 4): durable POST /v1/send_mail against the no-op GET /v1/ping, one run.

    bench/http_send.py                                  # REPS=1, 10 s per cell, 32 connections
    bench/http_send.py --reps 3 --duration 20 --connections 16 64

Cells, each against a FRESH `postroom serve` (empty SQLite store, delivery disabled so only
ingest is measured; account `bench`, sender domain example.com, one API key):
  ping     GET /v1/ping (authenticated no-op): the ceiling of the same app
  single   POST /v1/send_mail, 1 item with 1 recipient per request
  batch100 POST /v1/send_mail, 100 items with 1 recipient each per request (100 recipients)
Load: wrk -t1 -c C -d D with bench/http_send.lua (one fixed request; Authorization: Bearer key).
Per the API a 2xx means the request was committed; each send cell checks afterwards that the
store holds at least (2xx responses x items) messages and that no non-2xx answer came back.
Before each cell we wait until processes outside this run use <= --quiet-cores for 5 s
(bench/cpu_monitor.py) and record the foreign load during the cell; also the server's CPU
seconds (utime+stime) per request.
Output: a table on stdout, rows appended to OUT/http_results.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
POSTROOM = ROOT / ".venv" / "bin" / "postroom"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def item(i: int) -> dict:
    return {"from": {"email": "a@example.com"}, "to": [{"email": f"r{i}@example.org"}],
            "subject": "s", "content": "<p>x</p>"}


CELLS = {  # name: (method, path, items per request)
    "ping": ("GET", "/v1/ping", 0),
    "single": ("POST", "/v1/send_mail", 1),
    "batch100": ("POST", "/v1/send_mail", 100),
}


class Server:
    def __init__(self, workdir: Path, port: int, smtp_port: int) -> None:
        self.dir, self.port, self.smtp_port = workdir, port, smtp_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    @property
    def config(self) -> Path:
        return self.dir / "postroom.toml"

    def start(self) -> None:
        subprocess.run(["rm", "-rf", str(self.dir)], check=True)
        (self.dir / "data").mkdir(parents=True)
        self.config.write_text(
            f'data_dir = "{self.dir / "data"}"\n\n[smtp]\nhostname = "postroom.bench.test"\n'
            f'listen_plain = "127.0.0.1:{self.smtp_port}"\nlisten_implicit_tls = ""\nlisten_starttls = ""\n\n'
            f'[http]\nlisten = "127.0.0.1:{self.port}"\n\n[delivery]\nenabled = false\n'
        )
        cfg = ["--config", str(self.config)]
        subprocess.run([str(POSTROOM), "accounts", "create", "bench", "--sender-domain", "example.com",
                        "--trusted-network", "127.0.0.0/8", *cfg], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([str(POSTROOM), "keys", "create", "--account", "bench", "--json", *cfg],
                             check=True, capture_output=True, text=True).stdout
        self.key = json.loads(out)["key"]
        log = (self.dir / "postroom.log").open("wb")
        self.proc = subprocess.Popen([str(POSTROOM), "serve", *cfg], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        (self.dir / "postroom.pid").write_text(str(self.proc.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if b"postroom ready" in (self.dir / "postroom.log").read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"postroom did not start; see {self.dir / 'postroom.log'}")

    def cpu_s(self) -> float:
        assert self.proc is not None
        f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def messages(self) -> int:
        with sqlite3.connect(self.dir / "data" / "postroom.db") as db:
            return int(db.execute("select count(*) from messages").fetchone()[0])


def monitor(*args: str) -> str:
    return subprocess.run([sys.executable, str(BENCH / "cpu_monitor.py"), *args],
                          capture_output=True, text=True).stdout.strip()


def run_cell(a: argparse.Namespace, name: str, conns: int, rep: int, mon_log: str, out: Path) -> dict:
    method, path, items = CELLS[name]
    server = Server(out / "server", a.port, a.smtp_port)
    server.start()
    try:
        body_file = ""
        if items:
            body_file = str(out / f"body-{items}.json")
            Path(body_file).write_text(json.dumps({"data": [item(i) for i in range(items)]}))
        env = dict(os.environ, HTTP_METHOD=method, HTTP_PATH=path, HTTP_KEY=server.key, HTTP_BODY_FILE=body_file)
        url = f"http://127.0.0.1:{a.port}"
        # warm-up (imports, first queries), not measured; wrk exits 1 when no request completed
        subprocess.run(["wrk", "-t1", "-c4", "-d3s", "--timeout", "10s", "-s", str(BENCH / "http_send.lua"), url],
                       env=env, capture_output=True, check=False)
        before_msgs = server.messages() if items else 0
        rc = subprocess.run([sys.executable, str(BENCH / "cpu_monitor.py"), "wait-quiet", "--log", mon_log,
                             "--max-cores", str(a.quiet_cores), "--quiet-for", "5",
                             "--timeout", str(a.quiet_timeout)]).returncode
        if rc:
            print(f"WARNING: not quiet after {a.quiet_timeout}s; measuring anyway", file=sys.stderr)
        cpu0, t0 = server.cpu_s(), time.time()
        res = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{a.duration}s", "--timeout", "10s",
                              "-s", str(BENCH / "http_send.lua"), url],
                             env=env, capture_output=True, text=True, check=True)
        t1, cpu1 = time.time(), server.cpu_s()
        time.sleep(1)
        foreign = monitor("between", "--log", mon_log, str(t0), str(t1)).split()[0]
        m = re.search(r"SUMMARY requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+) sockerr=(\d+)",
                      res.stdout)
        if not m:
            raise RuntimeError(f"wrk output not understood:\n{res.stdout}\n{res.stderr}")
        reqs, dur_us, p50, p99, non2xx, sockerr = map(int, m.groups())
        ok = reqs - non2xx
        stored = server.messages() - before_msgs if items else 0
        check = "-"
        if items:
            check = "ok" if non2xx == 0 and stored >= ok * items else f"FAIL stored={stored} ok={ok} non2xx={non2xx}"
        rps = reqs / (dur_us / 1e6)
        return {"cell": name, "conns": conns, "rep": rep, "requests": reqs, "req_s": round(rps, 1),
                "rcpt_s": round(rps * items, 1), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
                "non2xx": non2xx, "sockerr": sockerr, "stored": stored,
                "server_cpu_ms_per_req": round((cpu1 - cpu0) * 1000 / max(reqs, 1), 3),
                "server_cores": round((cpu1 - cpu0) / (t1 - t0), 2), "foreign_cores": foreign, "check": check}
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", "1")))
    ap.add_argument("--duration", type=int, default=10, help="seconds per cell")
    ap.add_argument("--connections", type=int, nargs="+", default=[32])
    ap.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    ap.add_argument("--port", type=int, default=12631)
    ap.add_argument("--smtp-port", type=int, default=12630)
    ap.add_argument("--quiet-cores", type=float, default=0.10)
    ap.add_argument("--quiet-timeout", type=float, default=900)
    ap.add_argument("--out", default="/var/tmp/postroom-http-bench")
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    mon_log = str(out / f"cpu-{run_id}.log")
    mon = subprocess.Popen([sys.executable, str(BENCH / "cpu_monitor.py"), "watch", "--log", mon_log,
                            "--own", str(os.getpid()), "--own-cmdline", str(out) + "/"])
    rows = []
    try:
        time.sleep(6)
        py = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-V"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                    .stdout.splitlines() if ln.startswith("Model name")), "?")
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        print(f"# nproc={os.cpu_count()} cpu={cpu} {py.strip()} "
              f"{(wrk_v.stdout + wrk_v.stderr).splitlines()[0][:40]} duration={a.duration}s reps={a.reps}")
        for rep in range(1, a.reps + 1):
            for conns in a.connections:
                for name in a.cells:
                    row = run_cell(a, name, conns, rep, mon_log, out)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        mon.terminate()
        mon.wait()
    csv = out / "http_results.csv"
    keys = list(rows[0]) if rows else []
    new = not csv.exists()
    with csv.open("a") as f:
        if new:
            f.write("run," + ",".join(keys) + "\n")
        for r in rows:
            f.write(run_id + "," + ",".join(str(r[k]) for k in keys) + "\n")
    print("\n| conns | rep | cell | req/s | recipients/s | p50 ms | p99 ms | server CPU ms/req | foreign cores | check |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['conns']} | {r['rep']} | {r['cell']} | {r['req_s']:,.0f} | {r['rcpt_s']:,.0f} | {r['p50_ms']:.1f} "
              f"| {r['p99_ms']:.1f} | {r['server_cpu_ms_per_req']} | {r['foreign_cores']} | {r['check']} |")
    for conns in a.connections:
        for rep in range(1, a.reps + 1):
            by = {r["cell"]: r for r in rows if r["conns"] == conns and r["rep"] == rep}
            if "ping" in by and "single" in by:
                print(f"c={conns} rep {rep}: single/ping = {by['single']['req_s'] / by['ping']['req_s']:.2f} (target >= 0.50)")
            if "batch100" in by:
                print(f"c={conns} rep {rep}: batch100 = {by['batch100']['rcpt_s']:,.0f} recipients/s (target >= 5,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
