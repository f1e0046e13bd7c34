"""Foreign CPU: how much CPU processes outside the benchmark use while it runs.

The machine is shared (other people's test suites run on the same 2 cores), and a rate measured
while a foreign process eats a core says nothing. `watch` scans /proc every --interval seconds and
appends "wall_time cumulative_foreign_cpu_seconds top_command its_seconds" to --log. A process is
*ours* (not foreign) if it, or an ancestor, is --own PID, has one of --own-cmdline substrings in
its command line, or is named in one of the --own-pidfile files; kernel threads count as ours
(their work is mostly the benchmark's I/O). CPU of foreign processes that exit between two scans
is lost for at most one interval. The hypervisor's steal time (/proc/stat) counts as foreign too,
under the name `(steal)`: a core that another virtual machine took is as lost to the benchmark as
one a local process used (seen here: 0-41 % steal from one 20-second measurement to the next).

    cpu_monitor.py watch --log F --own PID [--own-cmdline S]... [--own-pidfile F]...
    cpu_monitor.py now --log F                 # "wall_time cumulative_seconds" of the last scan
    cpu_monitor.py wait-quiet --log F --max-cores 0.1 --quiet-for 5 --timeout 900
    cpu_monitor.py between --log F T0 T1       # foreign cores (average) and top command in [T0, T1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def scan() -> dict[int, tuple[int, int, str, float]]:
    """pid -> (ppid, cpu ticks, command, start time in ticks since boot)."""
    out: dict[int, tuple[int, int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat[stat.rindex(")") + 2:].split()
        out[int(entry)] = (int(f[1]), int(f[11]) + int(f[12]), comm, float(f[19]))
    return out


def steal_ticks() -> int:
    """Ticks of all CPUs stolen by the hypervisor since boot (0 where the kernel has no field)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) if len(fields) > 8 else 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ours(procs: dict[int, tuple[int, int, str, float]], roots: set[int]) -> set[int]:
    """The roots, kernel threads (children of pid 2) and all their descendants."""
    mine = {p for p in roots if p in procs} | {2}
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in procs.items():
        children.setdefault(ppid, []).append(pid)
    frontier = list(mine)
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, []) if c not in mine]
        mine.update(frontier)
    return mine


def watch(args: argparse.Namespace) -> None:
    boot_ticks = (time.time() - float(Path("/proc/uptime").read_text().split()[0])) * CLK_TCK
    started = time.time() * CLK_TCK - boot_ticks  # our start, in ticks since boot
    seen: dict[int, int] = {}  # foreign pid -> cpu ticks at last scan
    total = 0
    cmd_cache: dict[tuple[int, str], bool] = {}
    ever_ours: set[tuple[int, float]] = set()  # (pid, start time)
    last_steal = steal_ticks()
    with open(args.log, "a", buffering=1) as log:
        while True:
            procs = scan()
            roots = {args.own}
            for pf in args.own_pidfile:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    roots.add(int(Path(pf).read_text().split()[0]))
            # command lines only for processes not checked before (cheap steady state); keyed by
            # (pid, name) because exec after fork keeps the pid but changes both
            for pid, (_ppid, _ticks, comm, _start) in procs.items():
                if (pid, comm) not in cmd_cache:
                    line = cmdline(pid)
                    cmd_cache[(pid, comm)] = any(s in line for s in args.own_cmdline)
                if cmd_cache[(pid, comm)]:
                    roots.add(pid)
            # once ours, always ours: at `postfix stop` the master exits first and its children
            # live on for a moment as orphans, with all the CPU they used while relaying
            mine = ours(procs, roots) | {p for p in procs if (p, procs[p][3]) in ever_ours}
            ever_ours.update((p, procs[p][3]) for p in mine)
            step: Counter[int] = Counter()
            for pid, (_ppid, ticks, _comm, start) in procs.items():
                if pid in mine:
                    seen.pop(pid, None)
                    continue
                before = seen.get(pid, ticks if start < started else 0)
                if ticks > before:
                    step[pid] += ticks - before
                    total += ticks - before
                seen[pid] = ticks
            for gone in set(seen) - set(procs):
                del seen[gone]
            for key in [k for k in cmd_cache if k[0] not in procs]:
                del cmd_cache[key]
            ever_ours = {k for k in ever_ours if k[0] in procs}
            top, top_ticks = "-", 0
            if step:
                pid, top_ticks = step.most_common(1)[0]
                top = "_".join(cmdline(pid).split()[:4])[-80:] or procs[pid][2].replace(" ", "_")
            steal = steal_ticks()
            stolen, last_steal = max(0, steal - last_steal), steal
            total += stolen
            if stolen > top_ticks:
                top, top_ticks = "(steal)", stolen
            log.write(f"{time.time():.3f} {total / CLK_TCK:.2f} {top} {top_ticks / CLK_TCK:.2f}\n")
            time.sleep(args.interval)


Row = tuple[float, float, str, float]  # wall time, cumulative foreign s, top command, its s


def read_log(path: str) -> list[Row]:
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows.append((float(parts[0]), float(parts[1]), parts[2], float(parts[3])))
    return rows


def between(rows: list[Row], t0: float, t1: float) -> tuple[float, str]:
    """Average foreign cores in [t0, t1] and the command that used most of it."""
    inside = [r for r in rows if t0 <= r[0] <= t1]
    before = [r for r in rows if r[0] < t0]
    if not inside:
        return 0.0, "-"
    first = before[-1] if before else inside[0]
    last = inside[-1]
    cores = (last[1] - first[1]) / max(1e-3, last[0] - first[0])
    tops: Counter[str] = Counter()
    for r in inside:
        if r[2] != "-":
            tops[r[2]] += r[3]
    return cores, (tops.most_common(1)[0][0] if tops else "-")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--log", required=True)
    w.add_argument("--own", type=int, required=True)
    w.add_argument("--own-cmdline", action="append", default=[])
    w.add_argument("--own-pidfile", action="append", default=[])
    w.add_argument("--interval", type=float, default=0.5)
    n = sub.add_parser("now")
    n.add_argument("--log", required=True)
    q = sub.add_parser("wait-quiet")
    q.add_argument("--log", required=True)
    q.add_argument("--max-cores", type=float, default=0.1)
    q.add_argument("--quiet-for", type=float, default=5.0)
    q.add_argument("--timeout", type=float, default=900.0)
    b = sub.add_parser("between")
    b.add_argument("--log", required=True)
    b.add_argument("t0", type=float)
    b.add_argument("t1", type=float)
    args = ap.parse_args()

    if args.cmd == "watch":
        watch(args)
    elif args.cmd == "now":
        rows = read_log(args.log)
        print(f"{rows[-1][0]:.3f}" if rows else f"{time.time():.3f}")
    elif args.cmd == "between":
        cores, top = between(read_log(args.log), args.t0, args.t1)
        print(f"{cores:.3f} {top}")
    else:  # wait-quiet: exit 0 once the last --quiet-for seconds were quiet, 1 on timeout
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            now = time.time()
            rows = read_log(args.log)
            if rows and rows[0][0] < now - args.quiet_for:
                cores, _ = between(rows, now - args.quiet_for, now)
                if cores <= args.max_cores:
                    return 0
            time.sleep(1.0)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
