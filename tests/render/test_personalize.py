"""Substitution in each dialect's syntax (pure): lookups, defaults, escaping, no code execution."""

from __future__ import annotations

import pytest

from postroom.render.personalize import Substitution, header_safe, stringify

ANN = "ann@example.org"


def test_zoho_merge_fields_with_defaults_and_contact_fields() -> None:
    s = Substitution("zoho", recipient_vars={ANN: {"first_name": "Ann"}},
                     recipient_fields={ANN: {"country": "CA"}}, global_vars={"shop": "Books"})
    v = s.values("Ann@Example.org")  # looked up by the lowercased address
    text = "Hi $[first_name|Friend]$ from $[ country ]$, $[shop]$ $[city|nowhere]$ $[zip]$."
    assert s.apply(text, v, html=False) == "Hi Ann from CA, Books nowhere ."
    other = s.values("bob@example.org")
    assert s.apply("Hi $[first_name|Friend]$!", other, html=False) == "Hi Friend!"
    assert s.apply("$[FIRST_NAME]$", v, html=False) == "Ann"  # case-insensitive fallback
    assert s.has_placeholders("a $[x]$ b") and not s.has_placeholders("price $5 [x]")
    assert s.per_recipient


def test_values_are_escaped_in_html_but_defaults_are_markup() -> None:
    s = Substitution("zoho", recipient_vars={ANN: {"n": '<script>"x"&</script>'}})
    out = s.apply("<p>$[n]$ $[m|<b>you</b>]$</p>", s.values(ANN), html=True)
    assert out == "<p>&lt;script&gt;&quot;x&quot;&amp;&lt;/script&gt; <b>you</b></p>"
    assert s.apply("$[n]$", s.values(ANN), html=False) == '<script>"x"&</script>'


def test_mailgun_recipient_variables_nested_and_the_address() -> None:
    s = Substitution("mailgun", recipient_vars={ANN: {"first": "Ann", "id": 7,
                                                      "shop": {"city": "Oslo"}}},
                     global_vars={"plan": "pro"})
    v = s.values(ANN)
    text = "%recipient.first% #%recipient.id% %recipient.shop.city% %recipient.plan% " \
           "%recipient.none%|%recipient%"
    assert s.apply(text, v, html=False) == f"Ann #7 Oslo pro |{ANN}"
    assert s.uses_address("To: %recipient%") and not s.uses_address("%recipient.first%")
    assert s.apply("100% sure", v, html=False) == "100% sure"


def test_sendgrid_subs_by_address_or_position_and_sections() -> None:
    sub = {"-name-": ("Ben", "John"), "-greet-": (":hello", ":hi")}
    sections = {":hello": "Hello -name-", ":hi": "Hi -name-", ":footer": "Bye <b>-name-</b>"}
    by_address = Substitution(
        "sendgrid", sendgrid_sub=sub, sendgrid_sections=sections,
        recipient_vars={"ben@x.org": {"-name-": "Ben", "-greet-": ":hello"}})
    assert by_address.apply("-greet-! -name- :footer", by_address.values("ben@x.org"),
                            html=False) == "Hello Ben! Ben Bye <b>Ben</b>"
    positional = Substitution("sendgrid", sendgrid_sub=sub, sendgrid_sections=sections)
    v = positional.values("any@x.org", position=1)
    assert positional.apply("-greet-, -name-", v, html=False) == "Hi John, John"
    html = Substitution("sendgrid", sendgrid_sub={"-name-": ("<Ben>",)})
    assert html.apply("<p>-name-</p>", html.values("x@y.org", 0), html=True) == \
        "<p>&lt;Ben&gt;</p>"
    assert html.apply("-name-", html.values("x@y.org"), html=False) == ""  # no value: empty
    longest = Substitution("sendgrid", sendgrid_sub={"-n-": ("a",), "-n-x-": ("b",)})
    assert longest.apply("-n-x- -n-", longest.values("x@y.org", 0), html=False) == "b a"


def test_postroom_jinja_is_sandboxed_and_escaped() -> None:
    s = Substitution("postroom", recipient_vars={ANN: {"name": "<Ann>"}},
                     global_vars={"shop": "Books", "name": "nobody"})
    v = s.values(ANN)
    assert s.apply("{{ name }} at {{ shop }}{{ missing }}", v, html=True) == \
        "&lt;Ann&gt; at Books"
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    out = s.apply(evil, v, html=False)
    assert "subclasses" in out and "<class" not in out  # refused by the sandbox, left as written
    assert s.apply("{% if %}", v, html=False) == "{% if %}"  # a template that does not compile


def test_builtins_have_the_lowest_precedence() -> None:
    s = Substitution("mailgun", recipient_vars={ANN: {"x": "own"}})
    v = s.values(ANN, extra={"unsubscribe_url": "https://u/1", "x": "builtin"})
    assert s.apply("%recipient.x% %unsubscribe_url%", v, html=True) == "own https://u/1"


def test_values_to_text_and_header_safety() -> None:
    assert [stringify(v) for v in ("a", 1, 2.5, True, None, [1, "é"])] == \
        ["a", "1", "2.5", "true", "", '[1,"é"]']
    assert header_safe("a\r\nBcc: x\ty\x00") == "a Bcc: x\ty "  # tabs are whitespace
    with pytest.raises(ValueError):
        Substitution("handlebars")
