"""POST /v1/send_mail reads its body itself (`json_body`): every answer must be the one that
FastAPI's own body parameter (the documented twin route) gives, error for error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.store.api import Store

ITEM = {"from": {"email": "a@shop.example"}, "to": [{"email": "r@example.org"}],
        "subject": "s", "content": "<p>x</p>"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    data: Path = tmp_path_factory.mktemp("body")
    settings = Settings(data_dir=data)
    store = Store.open(settings.storage_url)
    account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(store, account.id, scopes=["send", "read"])
    served = create_app(settings, store)
    twin = create_app(settings, store)
    # the twin without the route that answers: FastAPI's own body parameter answers instead
    twin.router.routes[:] = [r for r in twin.router.routes
                             if not (getattr(r, "path", "") == "/v1/send_mail"
                                     and not r.include_in_schema)]
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(served, headers=auth) as a, TestClient(twin, headers=auth) as b:
        yield a, b, key
    store.close()


BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b"", JSON),
    (b"{", JSON),
    (b'{"data": [1,', JSON),
    (b'{"data": "\xff"}', JSON),  # not UTF-8
    (b"{}", JSON),
    (b'{"data": []}', JSON),
    (b'{"data": "x"}', JSON),
    (b"[1, 2]", JSON),
    (b'"text"', JSON),
    (b'{"data": [{"from": 5, "to": "x", "metadata": {"a": 1}}]}', JSON),
    (b'{"data": [{"to": [{"email": "r@example.org"}]}]}', JSON),
    (b'{"data": [{"from": {"email": "bad"}, "to": [{"email": "r@example.org"}]}]}', JSON),
    (b'{"data": [{"consent_email": "maybe", "to": []}]}', JSON),
    (b'{"data": [{}]}', {"content-type": "text/plain"}),
    (b'{"data": [{}]}', {}),
    (b'{"data": [{}]}', {"content-type": "application/vnd.postroom+json; charset=utf-8"}),
    (b'{"data": [{}]}', {"content-type": "application/x-www-form-urlencoded"}),
    (('{"data": [' + ",".join(["{}"] * 501) + "]}").encode(), JSON),
]


@pytest.mark.parametrize(("body", "headers"), BODIES)
def test_errors_match_fastapis_body_parameter(clients: tuple[Any, Any, str], body: bytes,
                                               headers: dict[str, str]) -> None:
    served, twin, _ = clients
    a = served.post("/v1/send_mail", content=body, headers=headers)
    b = twin.post("/v1/send_mail", content=body, headers=headers)
    assert (a.status_code, a.json()) == (b.status_code, b.json())
    assert a.status_code >= 400


def test_success_has_the_same_shape(clients: tuple[Any, Any, str]) -> None:
    served, twin, _ = clients
    body = {"data": [ITEM, {**ITEM, "from": {"email": "x@elsewhere.example"}}]}
    a, b = served.post("/v1/send_mail", json=body), twin.post("/v1/send_mail", json=body)
    assert a.status_code == b.status_code == 207

    def shape(r: Any) -> list[tuple[str, str, list[str]]]:
        return [(d["code"], d["message"], sorted(d["details"])) for d in r.json()["data"]]

    assert shape(a) == shape(b)


@pytest.mark.parametrize(("body", "code"), [(b"{", "INVALID_DATA"),
                                             (b"{}", "AUTHENTICATION_FAILURE"),
                                             (b"", "AUTHENTICATION_FAILURE")])
def test_errors_come_in_fastapis_order(clients: tuple[Any, Any, str], body: bytes,
                                       code: str) -> None:
    """Malformed JSON is refused before the key is checked; a body that does not fit, after."""
    served, twin, _ = clients
    bad = {"Authorization": "Bearer nope-nope-nope-nope", **JSON}
    a = served.post("/v1/send_mail", content=body, headers=bad)
    b = twin.post("/v1/send_mail", content=body, headers=bad)
    assert (a.status_code, a.json()) == (b.status_code, b.json())
    assert a.json()["code"] == code
