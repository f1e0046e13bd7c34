"""Where Postroom's ingest time goes: CPU per thread and per message, optionally a py-spy profile.

Starts a fresh Postroom (empty store, delivery off, [smtp] processes = --processes), runs one
smtp-source workload against it, and prints:
- the rate, and the machine's CPU over the run from /proc/stat (user, system, softirq, idle),
- smtp-source's own CPU (rusage of the child),
- every server thread's CPU (/proc/PID/task/TID/stat): cores busy and µs per message.
With --py-spy FILE, py-spy samples the main server process meanwhile (`record --threads -f raw`,
with --gil only the samples of the thread holding the interpreter lock;
it slows the server down, so the rate of such a run is not a benchmark figure); summarize the
file with bench/profile_report.py.

    .venv/bin/python bench/profile.py --sessions 50                     # new connection per message
    .venv/bin/python bench/profile.py --sessions 10 --reuse --py-spy /tmp/p.txt
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from postroom_server import CLK_TCK, ROOT, PostroomServer, descendants

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


def threads(pids: list[int]) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """(pid, tid) -> (utime, stime in ticks, minor page faults, context switches), for every
    thread of these processes."""
    out: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            f = stat[stat.rindex(")") + 2:].split()
            switches = 0
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                    if line.endswith("ctxt_switches") or "ctxt_switches:" in line:
                        switches += int(line.split()[-1])
            out[(pid, int(tid))] = (int(f[11]), int(f[12]), int(f[7]), switches)
    return out


def thread_names(pids: list[int]) -> dict[int, str]:
    """tid -> Python thread name, from `py-spy dump` (threads without Python frames are absent)."""
    out: dict[int, str] = {}
    for pid in pids:
        try:
            dump = subprocess.run([str(PY_SPY), "dump", "-p", str(pid)], capture_output=True,
                                  text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for m in re.finditer(r'^Thread (\d+) \(\w+\): "([^"]*)"', dump, re.MULTILINE):
            out[int(m[1])] = m[2]
    return out


def proc_stat() -> list[int]:
    """user nice system idle iowait irq softirq steal (jiffies, all CPUs)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def run_lanes(args: argparse.Namespace, port: int) -> tuple[int, SimpleNamespace]:
    """SESSIONS smtp-source processes at once (-s 1), lane i sending to domain d<i>: the e2e load.

    Returns the worst exit status and the lanes' summed user and system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    per, extra = divmod(args.count, args.sessions)
    lanes = [subprocess.Popen(
        ["smtp-source", *(["-d"] if args.reuse else []), "-s", "1", "-m", str(per + (i < extra)),
         "-l", str(args.size), "-f", "a@example.com", "-t", f"rcpt@d{i:02d}.example.org",
         f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL) for i in range(args.sessions)]
    worst = 0
    for lane in lanes:
        _, status, _ = os.wait4(lane.pid, 0)
        worst = worst or status
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return worst, SimpleNamespace(ru_utime=after.ru_utime - before.ru_utime,
                                  ru_stime=after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", "-s", type=int, default=50)
    ap.add_argument("--reuse", action="store_true", help="many messages per connection (smtp-source -d)")
    ap.add_argument("--count", "-n", type=int, default=20000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--port", type=int, default=12630, help="plain port of the fresh server")
    ap.add_argument("--py-spy", type=Path, help="also record a py-spy profile (raw) into this file")
    ap.add_argument("--gil", action="store_true", help="py-spy: only samples that hold the GIL")
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--delivery-extra", default="", help="with --e2e: more [delivery] TOML lines")
    ap.add_argument("--keep-log", type=Path, help="copy the server's log here before cleaning up")
    ap.add_argument("--e2e", action="store_true",
                    help="delivery on, routed to smtp-sink; SESSIONS lanes of smtp-source -s 1, one domain"
                         " each; timed until the sink has every message")
    ap.add_argument("--tmp-dir", default="/var/tmp",
                    help="where the server's data dir goes; /dev/shm (tmpfs: fsync is a no-op) shows"
                         " what the durable commit costs - never a benchmark figure")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="postroom-profile-", dir=args.tmp_dir) as tmp:
        sink_port = args.port + 2
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-M", str(args.count), "-c",
                                 f"127.0.0.1:{sink_port}", "1000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if args.e2e else None
        server = PostroomServer(Path(tmp), port=args.port, http_port=args.port + 1,
                                processes=args.processes,
                                deliver_to=f"127.0.0.1:{sink_port}" if args.e2e else None,
                                delivery_extra=args.delivery_extra.replace("\\n", "\n"))
        spy: subprocess.Popen[bytes] | None = None
        try:
            server.start()
            time.sleep(1.0)
            pids = descendants(server.pid)
            if args.py_spy:
                spy = subprocess.Popen(
                    [str(PY_SPY), "record", "--threads", "--subprocesses", "-p", str(server.pid), "-r", "100", "-f", "raw",
                     "-o", str(args.py_spy), "-d", str(int(args.time_limit)), *(["--gil"] if args.gil else [])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            cmd = ["smtp-source", *(["-d"] if args.reuse else []), "-s", str(args.sessions),
                   "-m", str(args.count), "-l", str(args.size), "-f", "a@example.com",
                   "-t", "b@example.org", f"127.0.0.1:{server.port}"]
            before_threads, before_stat, t0 = threads(pids), proc_stat(), time.monotonic()
            if sink is None:
                src = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
                _, status, usage = os.wait4(src.pid, 0)
            else:
                status, usage = run_lanes(args, server.port)
                sink.wait(timeout=args.time_limit)
            elapsed = time.monotonic() - t0
            after_threads, after_stat = threads(pids), proc_stat()
            stored = server.stored_messages()
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                spy.wait(timeout=60)
                spy = None
            tnames = thread_names(pids)
        finally:
            if spy is not None:
                spy.kill()
                spy.wait(timeout=10)
            server.stop()
            if args.keep_log:
                shutil.copyfile(server.log, args.keep_log)
            if sink is not None and sink.poll() is None:
                sink.kill()
                sink.wait()

    n = args.count
    mode = "reuse (-d)" if args.reuse else "new connection per message"
    if args.e2e:
        mode += ", END TO END (delivery on, timed until smtp-sink has all)"
    print(f"processes={args.processes}; smtp-source {args.sessions} sessions, {mode}, {n} x {args.size} B;"
          f" py-spy {'ON (rate not a benchmark figure)' if args.py_spy else 'off'}")
    print(f"rate: {n / elapsed:,.0f} msgs/s ({elapsed:.2f} s); smtp-source exit {os.waitstatus_to_exitcode(status)};"
          f" stored {stored}")
    d = [a - b for a, b in zip(after_stat, before_stat, strict=True)]
    total = sum(d) or 1
    ncpu = os.cpu_count() or 1
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    print("machine CPU: " + ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in zip(names, d, strict=True)
                                       if v) + f" (of {ncpu} cores)")
    busy_s = (total - d[3] - d[4]) / CLK_TCK
    src_s = usage.ru_utime + usage.ru_stime
    print(f"  busy: {busy_s / n * 1e6:,.0f} µs/msg in all; smtp-source: {src_s / n * 1e6:,.0f} µs/msg"
          f" (user {usage.ru_utime:.2f} s, sys {usage.ru_stime:.2f} s)")
    print("server threads (cores busy over the run; CPU µs per message, of it in the kernel;"
          " minor page faults and context switches per message):")
    server_ticks = 0
    for key, (user, system, faults, switches) in sorted(after_threads.items()):
        user0, system0, faults0, switches0 = before_threads.get(key, (0, 0, 0, 0))
        used, kernel = user - user0 + system - system0, system - system0
        server_ticks += used
        if used:
            label = tnames.get(key[1], "(no Python frames)")
            print(f"  pid {key[0]:>7} tid {key[1]:>7} {label:<26} {used / CLK_TCK / elapsed:5.2f} cores"
                  f"  {used / CLK_TCK / n * 1e6:7,.0f} µs/msg ({100 * kernel / used:.0f} % system)"
                  f"  {(faults - faults0) / n:5.2f} flt {(switches - switches0) / n:5.2f} cs")
    print(f"  all server threads: {server_ticks / CLK_TCK / elapsed:.2f} cores,"
          f" {server_ticks / CLK_TCK / n * 1e6:,.0f} µs/msg")
    return 0 if stored == n else 1


if __name__ == "__main__":
    sys.exit(main())
