"""The HTML a copy edits: only real `href` attributes of `<a>` and `<area>` are tracked links
(never text inside another attribute, a comment or a script), and a part re-encoded to UTF-8
has its `<meta>` charset declarations say utf-8."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.render import tokens
from postroom.render.copy import Copies, Recipient, Tracking
from postroom.render.html import has_link
from postroom.render.personalize import Substitution
from postroom.render.tracking import CLICK, Links, apply, rewrite_html

LINKS = Links("https://t.example", b"s" * 32)
ANN = "ann@example.org"


def mark(url: str) -> str:
    return f"T({url})"


@pytest.mark.parametrize(("html", "expected"), [
    ("""<img alt='see href="http://x.example"'>""", None),
    ("""<a title="a href='http://x.example'" href="http://y.example">y</a>""",
     """<a title="a href='http://x.example'" href="T(http://y.example)">y</a>"""),
    ("""<a title='see href="http://x.example"' href="http://y.example">y</a>""",
     """<a title='see href="http://x.example"' href="T(http://y.example)">y</a>"""),
    ("""<a title="a>b" href="http://y.example">""", """<a title="a>b" href="T(http://y.example)">"""),
    ("""<img alt='<a href="http://x.example">'><a href="http://y.example">""",
     """<img alt='<a href="http://x.example">'><a href="T(http://y.example)">"""),
    ("""<!-- <a href="http://x.example"> --><script>s = '<a href="http://x.example">'</script>""",
     None),
    ("""<title><a href="http://x.example"></title>""", None),
    ("""<abbr href="http://x.example">""", None),  # not a link element
    ("""<map><area shape="rect" href="http://y.example"></map>""",
     """<map><area shape="rect" href="T(http://y.example)"></map>"""),
    ("""<a href=http://y.example/p>y</a>""", """<a href="T(http://y.example/p)">y</a>"""),
    ("""<a href="http://1.example" href="http://2.example">""",  # the first counts
     """<a href="T(http://1.example)" href="http://2.example">"""),
    ("""<a\nhref = ' http://y.example '>""", """<a\nhref = ' T(http://y.example) '>"""),
])
def test_only_real_link_hrefs_are_rewritten(html: str, expected: str | None) -> None:
    assert rewrite_html(html, mark, None) == (html if expected is None else expected)


def test_a_link_in_another_attribute_does_not_turn_tracking_on() -> None:
    raw = (b"From: a@shop.example\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n"
           b"""<p><img src="cid:x" alt='<a href="http://x.example">'></p>\r\n""")
    copies = Copies(raw, message_id="m1", account_id="acc1", links=LINKS,
                    tracking=Tracking(clicks=True))
    assert not copies.per_recipient and copies.render(Recipient(ANN)) == raw


LATIN1_HTML = (
    '<html><head><meta charset="iso-8859-1">'
    '<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
    '<meta name="description" content="charset=latin-1 is the topic"></head>'
    '<body><p>Grüße {{ name }}</p><a href="https://shop.example/a">shop</a></body></html>')


def message(html: str, charset: str) -> bytes:
    return (f"From: a@shop.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/html; charset={charset}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + html.encode(charset) + b"\r\n"


def html_of(raw: bytes) -> tuple[str, str]:
    msg = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    return part.get_content_charset() or "", part.get_content()


def metas(html: str) -> list[str]:
    return re.findall(r"<meta [^>]*>", html)


@pytest.mark.parametrize("kw", [
    {"tracking": Tracking(opens=True, clicks=True)},  # tracked
    {"substitution": Substitution(recipient_vars={ANN: {"name": "Zoë"}})},  # personalized
])
def test_a_part_re_encoded_to_utf8_says_utf8_in_its_meta(kw: dict[str, object]) -> None:
    copies = Copies(message(LATIN1_HTML, "iso-8859-1"), message_id="m1", account_id="acc1",
                    links=LINKS, **kw)  # type: ignore[arg-type]
    charset, html = html_of(copies.render(Recipient(ANN)))
    assert charset == "utf-8" and "Grüße" in html
    assert metas(html) == [
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">',
        '<meta name="description" content="charset=latin-1 is the topic">']  # not a declaration


def test_meta_is_left_alone_when_the_part_was_not_re_encoded() -> None:
    odd = LATIN1_HTML.replace("iso-8859-1", "windows-1252")  # the author's own mismatch
    raw = message(odd, "utf-8")
    copies = Copies(raw, message_id="m1", account_id="acc1", links=LINKS,
                    tracking=Tracking(opens=True))
    assert html_of(copies.render(Recipient(ANN)))[1].count("windows-1252") == 1
    untouched = message(LATIN1_HTML, "iso-8859-1")  # nothing to do: sent as stored
    assert Copies(untouched, message_id="m1", account_id="acc1").render(Recipient(ANN)) \
        == untouched


def test_tracking_apply_declares_utf8_when_it_must_re_encode() -> None:
    # labelled US-ASCII, written in Latin-1: the text does not fit its charset, UTF-8 it is
    raw = message(LATIN1_HTML, "iso-8859-1").replace(b"charset=iso-8859-1\r\n",
                                                      b"charset=us-ascii\r\n")
    out = apply(raw, links=LINKS, message_id="m1", recipient=ANN, opens=True, clicks=True)
    charset, html = html_of(out)
    assert charset == "utf-8" and metas(html)[0] == '<meta charset="utf-8">'
    [token] = re.findall(r"/t/c/([\w\-]+\.[\w\-]+)", html)
    assert tokens.verify(LINKS.secret, CLICK, token)["u"] == "https://shop.example/a"  # type: ignore[index]


# --- against the standard library's HTML parser ------------------------------------------
URLS = ["http://a.example/x", "https://b.example/?q=1&amp;r=2", "HTTP://C.example", "mailto:x@y"]
VALUES = [*URLS, "", "plain", "a > b", "x < y", 'say "hi"', "it's", '<a href="http://in.example">',
          "href='http://attr.example'"]


def quoted(value: str) -> st.SearchStrategy[str]:
    options = []
    if '"' not in value:
        options.append(f'"{value}"')
    if "'" not in value:
        options.append(f"'{value}'")
    if value and not any(c in value for c in " \"'<>=`"):
        options.append(value)
    return st.sampled_from(options or ['""'])


attribute = st.builds(
    lambda name, value: f"{name}={value}",
    st.sampled_from(["href", "HREF", "title", "alt", "data-href", "class"]),
    st.sampled_from(VALUES).flatmap(quoted))
tag = st.builds(
    lambda name, attrs, space: f"<{name}{''.join(space + a for a in attrs)}>",
    st.sampled_from(["a", "A", "area", "img", "td", "abbr", "p"]),
    st.lists(attribute, max_size=3), st.sampled_from([" ", "\n", "  "]))
fragment = st.one_of(
    tag, tag, tag, st.sampled_from(["</a>", "</td>", "text", "a < b", "x > y", " ", "&amp;"]),
    st.builds(lambda t: f"<!-- {t} -->", tag),
    st.builds(lambda name, t: f"<{name}>{t}</{name}>", st.sampled_from(["script", "style"]),
              tag))
document = st.lists(fragment, max_size=12).map("".join)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.urls: list[str] = []

    def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
        href = next((v for k, v in attrs if k == "href"), None)
        if name in ("a", "area") and href and re.match(r"https?://", href, re.IGNORECASE):
            self.urls.append(href)


@settings(max_examples=500, deadline=None)
@given(document)
def test_links_are_the_ones_a_parser_finds(html: str) -> None:
    parser = _Links()
    parser.feed(html)
    parser.close()
    found: list[str] = []

    def collect(url: str) -> None:
        found.append(url)

    rewrite_html(html, collect, None)  # type: ignore[arg-type]
    assert found == [unescape(u) for u in parser.urls]
    assert has_link(html) == bool(parser.urls)
