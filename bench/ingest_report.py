"""Table for bench/ingest.sh: medians per system and cell, and Postroom's ratios to the references.

Input: rows in the format of the peers' results/raw.csv (run.sh), only those of one ingest run.
Usage: ingest_report.py RAW_CSV [--counts COUNTS_TXT --msgs N] [--rejected REJECTED_LOG]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

SINK = ("smtp-sink", "no storage")
RELAY_PREFIX = "relay to smtp-sink"
INGEST_PREFIX = "ingest only"
TARGET_SINK = 0.25  # Postroom ≥ 25 % of smtp-sink
TARGET_POSTFIX = 3.0  # Postroom ≥ 3 × Postfix

Key = tuple[str, str, str, str, str]  # system, scenario, sessions, conn, metric


def load(path: Path) -> dict[Key, list[dict[str, str]]]:
    groups: dict[Key, list[dict[str, str]]] = defaultdict(list)
    with path.open() as f:
        for r in csv.DictReader(f):
            groups[(r["system"], r["scenario"], r["sessions"], r["conn"], r["metric"])].append(r)
    return groups


def median(rows: list[dict[str, str]], field: str) -> float:
    return statistics.median(float(r[field]) for r in rows)


def label(system: str, scenario: str, metric: str) -> str:
    if system == "postfix":
        name = "Postfix relay" if scenario.startswith(RELAY_PREFIX) else "Postfix ingest-only"
        return f"{name} ({'acceptance' if metric == 'accept' else 'end to end'})"
    return system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("raw", type=Path)
    ap.add_argument("--counts", type=Path, help="'VARIANT COUNT' lines, one per Postroom rep")
    ap.add_argument("--msgs", type=int, default=0, help="messages each rep must have stored")
    ap.add_argument("--rejected", type=Path, help="log of measurements rejected for foreign CPU")
    args = ap.parse_args()
    groups = load(args.raw)
    cells = sorted({(k[2], k[3]) for k in groups}, key=lambda c: (int(c[0]), c[1]))
    systems: list[tuple[str, str, str]] = []
    for k in groups:
        if (k[0], k[1], k[4]) not in systems:
            systems.append((k[0], k[1], k[4]))

    def rate(system: str, scenario: str, metric: str, cell: tuple[str, str]) -> float | None:
        rows = groups.get((system, scenario, *cell, metric))
        return median(rows, "rate") if rows else None

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f}"

    head = " | ".join(f"{s} {c}" for s, c in cells)
    print("## Rates (median msgs/s; min–max; reps)\n")
    print(f"| system | {head} |")
    print("|---|" + "---|" * len(cells))
    for system, scenario, metric in systems:
        out = []
        for cell in cells:
            rows = groups.get((system, scenario, *cell, metric), [])
            if not rows:
                out.append("–")
                continue
            rates = [float(r["rate"]) for r in rows]
            out.append(f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}; {len(rows)})")
        print(f"| {label(system, scenario, metric)} | {' | '.join(out)} |")

    print("\n## CPU (medians): machine busy % of 2 cores / CPU µs per message, all but smtp-source's /"
          " foreign cores (other users' processes) during the measurement\n")
    print(f"| system | {head} |")
    print("|---|" + "---|" * len(cells))
    for system, scenario, metric in systems:
        if metric != "accept":
            continue
        out = []
        for cell in cells:
            rows = groups.get((system, scenario, *cell, metric), [])
            foreign = f" / {median(rows, 'foreign_cores'):.2f}" if rows and rows[0].get("foreign_cores") else ""
            out.append(f"{median(rows, 'cpu_busy_pct'):.0f} % / {median(rows, 'server_cpu_us_per_msg'):,.0f} µs"
                       f"{foreign}" if rows else "–")
        print(f"| {label(system, scenario, metric)} | {' | '.join(out)} |")

    relay = next((s for s in systems if s[0] == "postfix" and s[1].startswith(RELAY_PREFIX)), None)
    ingest = next((s for s in systems if s[0] == "postfix" and s[1].startswith(INGEST_PREFIX)), None)
    print("\n## Postroom's ratios (medians; targets: ≥ 0.25 × smtp-sink, ≥ 3 × Postfix)\n")
    print("| Postroom | cell | msgs/s | smtp-sink | × sink | Postfix relay | × relay | Postfix ingest-only | × ingest-only |")
    print("|---|---|---|---|---|---|---|---|---|")
    for system, scenario, metric in systems:
        if not system.startswith("postroom"):
            continue
        for cell in cells:
            ours = rate(system, scenario, metric, cell)
            if ours is None:
                continue
            sink = rate(*SINK, "accept", cell)
            refs = [rate(s[0], s[1], "accept", cell) if s else None for s in (relay, ingest)]

            def ratio(ref: float | None, target: float, ours: float = ours) -> str:
                if ref is None:
                    return "–"
                r = ours / ref
                return f"{r:.2f} {'✓' if r >= target else '✗'}"

            print(f"| {system} | {cell[0]} {cell[1]} | {ours:,.0f} | {fmt(sink)} | {ratio(sink, TARGET_SINK)}"
                  f" | {fmt(refs[0])} | {ratio(refs[0], TARGET_POSTFIX)} | {fmt(refs[1])}"
                  f" | {ratio(refs[1], TARGET_POSTFIX)} |")

    foreign = [float(r["foreign_cores"]) for rows in groups.values() for r in rows if r.get("foreign_cores")]
    if foreign:
        rejected = args.rejected.read_text().splitlines() if args.rejected and args.rejected.exists() else []
        print(f"\nForeign CPU (other users' processes) during kept measurements: median {statistics.median(foreign):.2f},"
              f" max {max(foreign):.2f} cores; measurements repeated because of it: {len(rejected)}")
    if args.counts:
        lines = args.counts.read_text().split() if args.counts.exists() else []
        counts = [int(c) for c in lines[1::2]]
        bad = [c for c in counts if c != args.msgs]
        print(f"\nPostroom stored-message check: {len(counts)} reps, "
              + ("all stored exactly " + str(args.msgs) if counts and not bad
                 else f"MISMATCH: counts {counts} (expected {args.msgs} each)"))


if __name__ == "__main__":
    main()
