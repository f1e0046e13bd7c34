"""Through the HTTP API, a template that would loop without end is refused with INVALID_DATA
(and does not hold the server), while one over 1,000 items of merge data is sent."""

from __future__ import annotations

from types import SimpleNamespace

NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
BASE = {"from": {"email": "x@alice.example"}, "to": [{"email": "r@example.org"}], "subject": "s"}


def test_a_template_without_end_is_invalid_data(env: SimpleNamespace) -> None:
    r = env.c.post("/v1/templates", json={"name": "t", "subject": "s", "html": NESTED},
                   headers=env.auth)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
    assert "too much work" in r.json()["message"]
    r = env.c.post("/v1/send_mail", json={"data": [
        {**BASE, "content": "{% for a in rows %}{% for b in rows %}{% endfor %}{% endfor %}",
         "merge_data": {"rows": list(range(10_000))}}]}, headers=env.auth)
    [result] = r.json()["data"]
    assert result["code"] == "INVALID_DATA" and "too much work" in result["message"], result


def test_a_thousand_rows_of_merge_data_are_sent(env: SimpleNamespace) -> None:
    rows = [{"sku": f"S{i}", "qty": i % 5, "price": i / 4} for i in range(1000)]
    content = ("<table>{% for r in rows %}<tr><td>{{ loop.index }}</td><td>{{ r.sku|lower }}"
               "</td><td>{{ '%.2f'|format(r.price) }}</td>{% if r.qty > 2 %}<td>!</td>{% endif %}"
               "</tr>{% endfor %}</table>Total {{ rows|sum(attribute='price') }}")
    r = env.c.post("/v1/send_mail", json={"data": [
        {**BASE, "content": content, "merge_data": {"rows": rows}}]}, headers=env.auth)
    [result] = r.json()["data"]
    assert result["code"] == "SUCCESS", result
    raw = env.store.get_raw(result["details"]["message_id"])
    assert b"s999" in raw and b"Total 124875.0" in raw
