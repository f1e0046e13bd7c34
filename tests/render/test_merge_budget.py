"""Merge templates have a budget of work per render: loops that write nothing, and work hidden in
filters, tests, comparisons, slices, calls and joins, fail fast with a MergeError; templates over
realistic data (1,000 items) render as before."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from postroom.render import merge
from postroom.render.bounds import MAX_STEPS

BIG = list(range(100_000))
DATA: dict[str, Any] = {"big": BIG, "d": {str(i): i for i in BIG}, "s": "x" * 1_000_000}

BOMBS = [
    # the review's case: no output, so the output cap never trips
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) if false %}{% endfor %}{% endfor %}",
    "{% for a in big %}{% for b in big %}{{ '' }}{% endfor %}{% endfor %}",  # merge data
    "{% for a in range(100000) recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    # one loop, with work over the data in each item
    "{% for a in range(100000) %}{% set x = big|sum %}{% endfor %}",
    "{% for a in range(100000) %}{% if a in big %}{% endif %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = big[1:] %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = big.count(1) %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = d.items()|list %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = s.upper() %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = big is sameas big %}{% endfor %}",
    "{% for a in range(100000) %}{% set x = '%s' % big %}{% endfor %}",
    # growth without a loop of ours
    "{{ lipsum(n=200000)|length }}",
]


def render_bounded(source: str, data: dict[str, Any]) -> BaseException | str:
    """Renders in a thread so that a template without a bound fails the test instead of
    hanging it (generous: a refused template takes well under a second)."""
    result: list[BaseException | str] = []

    def run() -> None:
        try:
            result.append(merge.render(source, data, html=False, missing="empty"))
        except BaseException as exc:  # handed to the test
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result, f"still rendering after 60 s: {source}"
    return result[0]


@pytest.mark.parametrize("source", BOMBS)
def test_work_beyond_the_budget_is_refused(source: str) -> None:
    outcome = render_bounded(source, DATA)
    assert isinstance(outcome, merge.MergeError), outcome
    assert str(outcome) == f"the template does too much work (more than {MAX_STEPS:,} steps)"


@pytest.mark.parametrize("source", [
    '{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}'
    "{% endfor %}",
    '{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}'
    "{% endfor %}",
    '{{ "{:>999999999}".format(1) }}', '{{ "{:>{}}".format(1, 5) }}',
])
def test_values_that_double_or_pad_are_bounded(source: str) -> None:
    outcome = render_bounded(source, {})
    assert isinstance(outcome, merge.MergeError), outcome
    assert "would be too large" in str(outcome) or "too much work" in str(outcome)


ORDERS = [{"name": f"item {i}", "price": i * 1.5, "qty": i % 7, "tags": ["new", "sale", "eco"]}
          for i in range(1000)]
REPORT = """\
{% for it in orders|sort(attribute="price", reverse=true) -%}
{{ loop.index }}. {{ it.name|title }} {{ "%.2f"|format(it.price) }} {{ "{:>6}".format(it.qty) }}
{%- for t in it.tags %} {{ t|upper }}{% if not loop.last %},{% endif %}{% endfor %}
{%- if it.qty > 3 and it.name in featured %} many{% endif %} {{ lookup.get(it.name, "") }}
{% endfor -%}
Total: {{ orders|sum(attribute="price") }}; odd: {{ orders|map(attribute="qty")|select("odd")|list|length }}
{{ orders[:3]|map(attribute="name")|join(", ") ~ " …" }}
"""


def test_a_template_over_a_thousand_items_renders() -> None:
    names = [o["name"] for o in ORDERS]
    data = {"orders": ORDERS, "featured": names[-50:],
            "lookup": {name: i for i, name in enumerate(names)}}
    out = merge.render(REPORT, data, html=True, missing="error")
    lines = out.splitlines()
    assert len(lines) == 1002
    assert lines[0] == "1. Item 999 1498.50      5 NEW, SALE, ECO many 999"
    assert lines[-2] == f"Total: {sum(o['price'] for o in ORDERS)}; odd: 429"
    assert lines[-1] == "item 0, item 1, item 2 …"


def test_each_render_has_its_own_budget() -> None:
    source = "{% for a in big %}{% endfor %}done"
    for _ in range(2 * MAX_STEPS // len(BIG) + 1):  # together far more than one budget
        assert merge.render(source, {"big": BIG}, html=False) == "done"


def test_delivery_renders_a_too_costly_template_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivery leaves a failing template as written (a copy is never lost); one that ran out
    of work is not rendered again for the next recipient, where each render cost the budget
    again (0.3 s of a render thread per copy)."""
    from postroom.render import personalize

    calls: list[str] = []
    real = merge.render

    def counting(source: str, *args: Any, **kwargs: Any) -> str:
        calls.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(merge, "render", counting)
    costly = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    for name in ("ann", "bob", "cy"):
        assert personalize.jinja(costly + "{{ name }}", {"name": name}, html=False).startswith(
            "{% for")
    assert len(calls) == 1
    # a template that fails otherwise (a runtime error) is still tried per recipient
    for n in (0, 1):
        out = personalize.jinja("{{ 1 / n }}", {"n": n}, html=False)
        assert out == ("{{ 1 / n }}" if n == 0 else "1.0")
    assert len(calls) == 3
