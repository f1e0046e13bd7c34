"""A template is referenced by its id or by its name within the account, as the docs' examples
do; names are unique per account, and a name that still matches several (data from before the
rule) is refused with an error that says so."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import update

from postroom.store.schema import templates

ITEM = {"from": {"email": "x@alice.example"}, "to": [{"email": "r@example.org"}]}


def _create(env: SimpleNamespace, name: str, subject: str = "Hi {{ who }}") -> Any:
    return env.c.post("/v1/templates", json={"name": name, "subject": subject,
                                             "html": "<p>{{ who }}</p>"}, headers=env.auth)


def _send(env: SimpleNamespace, ref: str) -> dict[str, Any]:
    r = env.c.post("/v1/send_mail", json={"data": [{**ITEM, "template": {"id": ref},
                                                    "merge_data": {"who": "Kim"}}]},
                   headers=env.auth)
    assert r.status_code < 500, r.text
    return r.json()["data"][0]


def test_send_mail_takes_a_template_name_or_id(env: SimpleNamespace) -> None:
    t = _create(env, "welcome-v2").json()["data"]
    for ref in ("welcome-v2", t["id"]):
        result = _send(env, ref)
        assert result["code"] == "SUCCESS", result
        assert env.store.get_message(result["details"]["message_id"]).subject == "Hi Kim"
    assert env.c.get("/v1/templates/welcome-v2", headers=env.auth).json()["data"]["id"] == t["id"]
    unknown = _send(env, "welcome-v3")
    assert (unknown["code"], unknown["details"]["api_name"]) == ("INVALID_DATA", "template")


def test_names_are_unique_per_account(env: SimpleNamespace) -> None:
    first = _create(env, "welcome").json()["data"]
    r = _create(env, "welcome")
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_DATA"), r.text
    assert r.json()["details"] == {"api_name": "name", "name": "welcome", "id": first["id"]}
    other = _create(env, "other").json()["data"]
    r = env.c.patch(f"/v1/templates/{other['id']}", json={"name": "welcome"}, headers=env.auth)
    assert (r.status_code, r.json()["details"]["id"]) == (400, first["id"]), r.text
    r = env.c.patch("/v1/templates/other", json={"subject": "renamed"}, headers=env.auth)
    assert r.status_code == 200 and r.json()["data"]["subject"] == "renamed", r.text
    r = env.c.patch(f"/v1/templates/{first['id']}", json={"name": "welcome"}, headers=env.auth)
    assert r.status_code == 200, r.text  # its own name is no conflict
    assert env.c.delete("/v1/templates/other", headers=env.auth).status_code == 200


def test_a_name_of_several_templates_is_an_ambiguity_error(env: SimpleNamespace) -> None:
    a = _create(env, "welcome").json()["data"]
    b = _create(env, "older").json()["data"]
    with env.store._db.write() as conn:  # duplicates stored before names had to be unique
        conn.execute(update(templates).where(templates.c.id == b["id"]).values(name="welcome"))
    result = _send(env, "welcome")
    assert (result["code"], result["details"]["api_name"]) == ("INVALID_DATA", "template")
    assert "2 templates" in result["message"] and sorted(result["details"]["ids"]) == sorted(
        [a["id"], b["id"]])
    assert _send(env, a["id"])["code"] == "SUCCESS"
