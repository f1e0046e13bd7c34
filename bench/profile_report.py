"""Summarize a py-spy raw (collapsed) profile: where each thread's samples go.

Input: `py-spy record --threads -f raw -o FILE` output, one line per distinct stack:
"thread (TID): Name;frame;frame;... COUNT", frames written as "function (file:line)".
Prints, per thread, its share of the samples, then the functions with the most samples on top of
the stack (self) and the functions present anywhere in the stack (inclusive), and self samples
per source file.

    .venv/bin/python bench/profile_report.py FILE [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def split_frame(frame: str) -> tuple[str, str]:
    """'func (path/file.py:123)' -> ('func (path/file.py)', 'path/file.py')."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "?"
    return f"{m['func']} ({m['file']})", m["file"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

    per_thread: Counter[str] = Counter()
    self_fn: dict[str, Counter[str]] = defaultdict(Counter)
    incl_fn: dict[str, Counter[str]] = defaultdict(Counter)
    self_file: dict[str, Counter[str]] = defaultdict(Counter)
    for line in args.file.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        head, _, frames_s = stack.partition(": ")
        frames = frames_s.split(";")
        thread = re.sub(r"\(\d+\)", "", head).replace("thread", "").strip() + ": " + frames[0]
        per_thread[thread] += count
        names = [split_frame(f) for f in frames[1:]] or [("(no python frame)", "?")]
        self_fn[thread][names[-1][0]] += count
        self_file[thread][names[-1][1]] += count
        for name in {n for n, _ in names}:
            incl_fn[thread][name] += count

    total = sum(per_thread.values())
    print(f"samples: {total}")
    for thread, n in per_thread.most_common():
        print(f"\n=== thread {thread}: {n} samples ({100 * n / total:.0f} % of all)")
        print("  self (top of stack):")
        for name, c in self_fn[thread].most_common(args.top):
            print(f"    {100 * c / n:5.1f} %  {name}")
        print("  inclusive (anywhere in the stack):")
        for name, c in incl_fn[thread].most_common(args.top):
            print(f"    {100 * c / n:5.1f} %  {name}")
        print("  self per file:")
        for name, c in self_file[thread].most_common(12):
            print(f"    {100 * c / n:5.1f} %  {name}")


if __name__ == "__main__":
    main()
