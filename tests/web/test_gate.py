"""The dashboard's read gate (web/context.py): its pages' blocking reads hold at most a few of
the worker threads the API shares, and one account at most one of those."""

from __future__ import annotations

import asyncio
import threading

from postroom.web.context import ReadGate


class Reads:
    """Blocking calls that wait for `release` and record how many ran at once (per account)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.peak = 0
        self.release = threading.Event()

    def read(self, account: str) -> str:
        with self.lock:
            self.running[account] = self.running.get(account, 0) + 1
            self.most[account] = max(self.most.get(account, 0), self.running[account])
            self.peak = max(self.peak, sum(self.running.values()))
        self.release.wait(10)
        with self.lock:
            self.running[account] -= 1
        return account


async def _drive(gate: ReadGate, reads: Reads, accounts: list[str]) -> list[str]:
    tasks = [asyncio.create_task(gate.run(a, reads.read, a)) for a in accounts]
    for _ in range(100):  # let every read that the gate admits start
        await asyncio.sleep(0.01)
    started = sum(reads.running.values())
    reads.release.set()
    done = await asyncio.gather(*tasks)
    assert started == reads.peak
    return done


def test_one_account_holds_one_thread_and_the_dashboard_two() -> None:
    reads = Reads()
    gate = ReadGate(per_process=2, per_account=1)
    accounts = ["heavy"] * 6 + ["a", "b", "c"]
    assert asyncio.run(_drive(gate, reads, accounts)) == accounts
    assert reads.peak == 2 and reads.most["heavy"] == 1
    assert set(reads.most) == {"heavy", "a", "b", "c"}
    assert gate._accounts == {}  # nothing kept for accounts with no read running


def test_reads_before_a_session_is_known_only_count_against_the_process() -> None:
    reads = Reads()
    assert asyncio.run(_drive(ReadGate(per_process=3), reads, ["x"] * 5)) == ["x"] * 5
    assert reads.peak == 1  # "x" is an account here: one at a time
    reads = Reads()
    gate = ReadGate(per_process=3)

    async def anonymous() -> None:
        tasks = [asyncio.create_task(gate.run(None, reads.read, "-")) for _ in range(5)]
        for _ in range(100):
            await asyncio.sleep(0.01)
        assert reads.running["-"] == 3
        reads.release.set()
        await asyncio.gather(*tasks)

    asyncio.run(anonymous())
    assert reads.peak == 3
