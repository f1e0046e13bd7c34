"""Lanes to one destination: a lane that cannot connect (say the relay's "421 too many
connections" on the n-th connection) gives up alone while another lane is sending; only when
every lane has given up is what is left deferred."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from postroom.delivery.attempt import DomainDelivery, Job
from postroom.delivery.pool import Pool
from postroom.delivery.routing import Destination
from postroom.model import Claim
from postroom.smtp.client import ClientTimeouts, DeliveryError
from postroom.smtp.replies import reply

NOW = datetime.now(UTC)
RELAY = Destination(host="relay.local", port=2526, tls="off", source="route")


CHAINED: list[bool] = []  # per send: was the next transaction opened behind it


class Session:
    capabilities = SimpleNamespace(pipelining=True)  # the next transaction rides behind

    def __init__(self, breaks_at: int = 0, closes_after: int = 0) -> None:
        self.breaks_at = breaks_at  # this transaction breaks the session (0: none does)
        self.closes_after = closes_after  # the server hangs up after this one's 250
        self.transactions = 0
        self.usable = True
        self._opened = False

    @property
    def opened(self) -> bool:  # as ClientSession's: only on a session that can go on
        return self._opened and self.usable

    async def send(self, mail_from: str, rcpts: list[str], data: bytes,
                   then: Any = None, **resigners: Any) -> Any:
        await asyncio.sleep(0.002)  # the relay takes a moment: the other lanes get going
        if self.transactions + 1 == self.breaks_at:
            self.usable = self._opened = False
            raise DeliveryError("connection lost after the final dot")
        self.transactions += 1
        self._opened = then is not None
        CHAINED.append(then is not None)
        if self.transactions == self.closes_after:
            self.usable = False
        return SimpleNamespace(mail_reply=None,
                               outcomes={r: reply(250, "2.0.0", "Ok: queued") for r in rcpts})

    async def close(self) -> None:
        self.usable = False


def jobs(count: int) -> list[Job]:
    return [Job((Claim(recipient_id=n, message_id=f"m{n}", account_id="a", mail_from="s@x.test",
                       address=f"u{n}@d{n % 5}.test", domain=f"d{n % 5}.test", attempts=0,
                       created_at=NOW, lease_until=NOW),), "s@x.test", b"data") for n in range(count)]


def deliver(refuse: set[int], count: int = 30, breaks_at: int = 0, closes_after: int = 0,
            lanes: int = 3, pipeline_messages: bool = True) -> tuple[list[Any], int]:
    """Deliver `count` jobs over `lanes` lanes; the connection attempts numbered in `refuse`
    fail; the first connection breaks at its transaction number `breaks_at`, or is closed by
    the server after its transaction number `closes_after`."""
    opened = [0]

    async def main() -> list[Any]:
        domains = DomainDelivery(router=None, resolver=None,  # type: ignore[arg-type]
                                 pool=Pool(max_total=10, max_per_key=lanes, max_messages=100),
                                 helo_name="postroom.test", timeouts=ClientTimeouts(),
                                 pipeline_messages=pipeline_messages)

        async def open_(dest: Destination) -> Session:
            opened[0] += 1
            if opened[0] in refuse:
                raise DeliveryError("421 4.7.0 Too many connections")
            first = opened[0] == 1
            return Session(breaks_at if first else 0, closes_after if first else 0)

        domains._open = open_  # type: ignore[method-assign]
        results: list[Any] = []
        await domains.deliver_to([RELAY], jobs(count), results)
        return results

    return asyncio.run(main()), opened[0]


def test_one_refused_connection_leaves_the_queue_to_the_other_lanes() -> None:
    results, opened = deliver(refuse={2})
    assert opened == 3
    assert len(results) == 30
    assert all(r.reply.startswith("250") for r in results), [r.reply for r in results]


def test_when_every_lane_is_refused_the_rest_is_deferred() -> None:
    results, opened = deliver(refuse={1, 2, 3})
    assert opened == 3 and len(results) == 30
    assert all("Too many connections" in r.reply for r in results)
    assert {r.outcome.kind.value for r in results} == {"deferred"}


def test_a_broken_session_sends_the_transaction_opened_behind_it_elsewhere() -> None:
    """Only the commands of the next transaction went out behind the lost one, never its
    message: it is sent again at once, not deferred."""
    results, opened = deliver(refuse=set(), breaks_at=2)
    assert len(results) == 30 and opened == 4  # three lanes, and the one that broke again
    failed = [r for r in results if not r.reply.startswith("250")]
    assert len(failed) == 1 and "connection lost" in failed[0].reply


def test_a_job_opened_on_a_session_the_server_then_closed_is_never_lost() -> None:
    """The server hangs up after a 250 with the next job's commands already sent: that job goes
    back to the queue, and when the last lane cannot connect again it is deferred with the
    rest, with the reason, like every other queued job."""
    results, opened = deliver(refuse={2}, count=5, closes_after=1, lanes=1)
    assert opened == 2 and len(results) == 5
    assert results[0].reply.startswith("250")
    assert all("Too many connections" in r.reply for r in results[1:]), results



def test_every_job_gets_a_result_whatever_hangs_up_or_refuses() -> None:
    """Lanes finish, sessions end after a 250 with a job opened behind it, reconnections are
    refused: in every combination each job ends with exactly one Result."""
    for lanes in (1, 2, 3):
        for count in (2, 3, 5, 8):
            for closes_after in (1, 2):
                for refuse in ({2}, {3}, {2, 3, 4}, {4, 5}):
                    results, _ = deliver(refuse=refuse, count=count, closes_after=closes_after,
                                         lanes=lanes)
                    ids = sorted(r.claim.recipient_id for r in results)
                    assert ids == list(range(count)), (lanes, count, closes_after, refuse, ids)


def test_pipelining_across_messages_can_be_turned_off() -> None:
    CHAINED.clear()
    results, _ = deliver(refuse=set(), count=30)
    assert len(results) == 30 and any(CHAINED)
    CHAINED.clear()
    results, _ = deliver(refuse=set(), count=30, pipeline_messages=False)
    assert len(results) == 30 and CHAINED and not any(CHAINED)
