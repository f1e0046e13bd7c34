"""An Idempotency-Key survives a client that hangs up mid-request: the send runs to its end and
its answer is kept, so the client's retry gets the first answer instead of a second send."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from postroom.api.routes.send import idempotent
from postroom.store import Store


def test_a_cancelled_request_still_keeps_its_answer(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    request = SimpleNamespace(headers={"idempotency-key": "k1"},
                              app=SimpleNamespace(state=SimpleNamespace(store=store)))
    principal = SimpleNamespace(account=account)
    sent: list[int] = []

    async def main() -> None:
        committed = asyncio.Event()

        async def run() -> tuple[int, Any]:
            await committed.wait()  # the send's commit, slower than the client's patience
            sent.append(1)
            return 200, {"data": "first answer"}

        handler = asyncio.create_task(idempotent(request, principal, b"body", run))
        await asyncio.sleep(0.05)
        handler.cancel()  # the client hung up; the server cancels the request
        await asyncio.wait([handler])
        committed.set()
        for _ in range(100):
            await asyncio.sleep(0.02)
            state = store.idempotency_claim(account.id, "k1",
                                            hashlib.sha256(b"body").hexdigest())
            if state[0] == "done":
                break
        assert state == ("done", 200, {"data": "first answer"}), state

    asyncio.run(main())
    assert sent == [1]
    store.close()
