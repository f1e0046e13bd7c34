"""What delivery reads: `load_for_delivery` returns exactly what the Core reads return."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from postroom.model import Account
from postroom.store import Store
from store.factories import make_message


def test_load_for_delivery_matches_the_core_read(store: Store, account: Account,
                                                 tmp_path: Path) -> None:
    spooled = tmp_path / "body"
    spooled.write_bytes(b"HEAD" + b"tail " * 300_000)  # 1.5 MB: more than one stored chunk
    later = datetime.now(UTC) + timedelta(hours=1)
    plain = make_message(account.id, "a@example.com", raw=b"Subject: one\r\n\r\nbody\r\n",
                         subject="one", header_from="x@acme.test")
    rich = make_message(account.id, "b@example.com", "c@example.org",
                        raw=b"Subject: two\r\n\r\n", options={"tags": ["t1"], "n": 2},
                        not_before=later, client_ip="192.0.2.7")
    big = make_message(account.id, "d@example.com", raw=b"Subject: big\r\n\r\n",
                       body_path=str(spooled), body_offset=4)
    store.enqueue_many([plain, rich, big])

    found = store.load_for_delivery([big.id, plain.id, rich.id, plain.id, "missing"])

    assert set(found) == {plain.id, rich.id, big.id}
    for message in (plain, rich):
        record, raw = found[message.id]
        expected = store.get_message(message.id)
        assert expected is not None
        assert record == dataclasses.replace(expected, recipients=())
        assert raw == message.raw
    record, raw = found[rich.id]
    assert record.options == {"tags": ["t1"], "n": 2}
    assert record.not_before == later
    assert record.created_at.tzinfo == UTC and record.client_ip == "192.0.2.7"
    assert found[plain.id][0].options == {}
    assert found[big.id][1] == b"Subject: big\r\n\r\n" + b"tail " * 300_000
